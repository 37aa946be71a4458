"""The two DenseNet encoders a DenseUNet can have.

``dacn``: the first author's network (moliqingcha/DACN, TensorFlow): stem of
three 3x3 convs WITH bias and ReLU but no BN (its ops.conv2d with norm=False;
the first stride 2), 3x3 max-pool stride 2, dense layers and transitions of
post-activation conv-BN-ReLU units, 3x3 average pools stride 2 (all pools TF
'SAME'), and after the last block a 1x1 conv-BN-ReLU "neck" to the width of
the deepest skip so that the decoder can add the skips without projections.

``hybrid``: a DenseNet-161 encoder with H-DenseUNet-style (Li X. et al., TMI
2018) pre-activation BN-ReLU-conv layers, a BN stem, 2x2 average pools and a
closing BN-ReLU; NOT the first author's network, kept for comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import conv_bn_relu
from .tf_same import SamePad2d, SamePool2d


def bn_relu_conv(cin: int, cout: int, kernel: int) -> nn.Sequential:
    """Pre-activation unit (DenseNet / H-DenseUNet): BN - ReLU - conv without bias."""
    return nn.Sequential(
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
    )


class DenseLayer(nn.Module):
    """1x1 conv to ``bottleneck * growth`` then 3x3 conv to ``growth``; output = [input, new]."""

    def __init__(self, cin: int, growth: int, bottleneck: int, preactivation: bool) -> None:
        super().__init__()
        unit = bn_relu_conv if preactivation else (lambda i, o, k: conv_bn_relu(i, o, kernel=k))
        self.body = nn.Sequential(unit(cin, bottleneck * growth, 1), unit(bottleneck * growth, growth, 3))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.body(x)], dim=1)


class EncoderStage(nn.Module):
    """A dense block and what follows it: a transition, or after the last block the neck."""

    def __init__(self, block: nn.Module, after: nn.Module) -> None:
        super().__init__()
        self.block, self.after = block, after

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(block output, i.e. the skip; the stage's output)."""
        skip = self.block(x)
        return skip, self.after(skip)


@dataclass
class Encoder:
    """Modules of an encoder and the widths the decoder needs."""

    stem: nn.Module
    pool: nn.Module
    stages: nn.ModuleList
    skips: list[int]  # widths of the skips at strides 2 (stem), 4, 8, ... (one per block but the last)
    out: int  # width of the bottleneck (stride 2 ** (len(blocks) + 1))


Transition = Callable[[int], tuple[nn.Module, int]]  # width in -> (module, width out)
Last = Callable[[int, list[int]], tuple[nn.Module, int]]  # (width in, skip widths) -> (module, width out)


def _blocks(
    stem: int,
    blocks: tuple[int, ...],
    growth: int,
    bottleneck: int,
    preactivation: bool,
    transition: Transition,
    last: Last,
) -> tuple[nn.ModuleList, list[int], int]:
    """Dense blocks with ``transition(width)`` between them and ``last(width, skips)`` after."""
    stages, skips, ch = nn.ModuleList(), [stem], stem
    for i, layers in enumerate(blocks):
        block = nn.Sequential(*[DenseLayer(ch + j * growth, growth, bottleneck, preactivation) for j in range(layers)])
        ch += layers * growth
        if i < len(blocks) - 1:
            skips.append(ch)
            after, ch = transition(ch)
        else:
            after, ch = last(ch, skips)
        stages.append(EncoderStage(block, after))
    return stages, skips, ch


def dacn_encoder(in_channels: int, stem: int, blocks: tuple[int, ...], growth: int, bottleneck: int) -> Encoder:
    """DACN's encoder (see the module docstring); transitions halve the width."""
    stem_net = nn.Sequential(
        SamePad2d(3, 2),
        nn.Conv2d(in_channels, stem, 3, stride=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(stem, stem, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(stem, stem, 3, padding=1),
        nn.ReLU(inplace=True),
    )

    def transition(ch: int) -> tuple[nn.Module, int]:
        return nn.Sequential(conv_bn_relu(ch, ch // 2, kernel=1), SamePool2d("avg")), ch // 2

    def neck(ch: int, skips: list[int]) -> tuple[nn.Module, int]:
        return conv_bn_relu(ch, skips[-1], kernel=1), skips[-1]  # 2208 -> 2112 in DACN

    stages, skips, out = _blocks(stem, blocks, growth, bottleneck, False, transition, neck)
    return Encoder(stem_net, SamePool2d("max"), stages, skips, out)


def hybrid_encoder(in_channels: int, stem: int, blocks: tuple[int, ...], growth: int, bottleneck: int) -> Encoder:
    """DenseNet-161-style pre-activation encoder with a BN stem (see the module docstring)."""
    stem_net = nn.Sequential(
        conv_bn_relu(in_channels, stem, stride=2), conv_bn_relu(stem, stem), conv_bn_relu(stem, stem)
    )

    def transition(ch: int) -> tuple[nn.Module, int]:
        return nn.Sequential(bn_relu_conv(ch, ch // 2, 1), nn.AvgPool2d(2)), ch // 2

    def norm(ch: int, skips: list[int]) -> tuple[nn.Module, int]:
        return nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(inplace=True)), ch

    stages, skips, out = _blocks(stem, blocks, growth, bottleneck, True, transition, norm)
    return Encoder(stem_net, nn.MaxPool2d(3, stride=2, padding=1), stages, skips, out)


ENCODERS = {"dacn": dacn_encoder, "hybrid": hybrid_encoder}
