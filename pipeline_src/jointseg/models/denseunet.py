"""2-D DenseUNet; the ``paper`` preset is the first author's DACN network exactly.

The first author's DenseUNet (moliqingcha/DACN, ``denseunet.py`` / ``ops.py``,
TensorFlow), per stage at a 256x256 input:

- stem: three 3x3 convs to 96 with bias, ReLU, no BN (first stride 2) -> 128x128;
  3x3 max-pool stride 2 -> 64x64 (all strided ops TF 'SAME', see ``tf_same``);
- dense blocks 6 / 12 / 36 / 24, growth 48, each layer 1x1 conv-BN-ReLU to 192
  then 3x3 conv-BN-ReLU to 48 (post-activation); block outputs 384 / 768 / 2112 / 2208;
- transitions: 1x1 conv-BN-ReLU to half (192 / 384 / 1056), 3x3 average pool
  stride 2 -> 32, 16, 8;
- neck: 1x1 conv-BN-ReLU 2208 -> 2112 at 8x8 (the bottleneck; attention goes here);
- decoder: five stages of x2 bilinear upsampling (align_corners=True, as
  tf.image.resize_bilinear there), + skip (block 3, block 2, block 1, stem;
  none in the last), 3x3 conv-BN-ReLU to 768 / 384 / 96 / 96 / 64; no skip
  projection: each skip's width equals the incoming width;
- head: 1x1 conv (no bias) to the classes, BN and, as ops.conv2d does by
  default, a ReLU (``head_relu``; it clamps the logits at 0, so every class
  score is >= 0 and a class is only preferred where its score is positive).

48,840,260 parameters for RGB input and 2 classes, 31,114,944 of them in the
encoder (stem, blocks, transitions, neck). BN momentum 0.1 / eps 1e-5 equal
TF's decay 0.9 / epsilon 1e-5; convs start as tf.contrib.layers.conv2d's
(Glorot-uniform weights, zero biases). Upsampling goes to the skip's size (DACN
doubles the previous size; the same for inputs divisible by 32).

Presets: ``paper`` (DACN), ``small`` (DACN topology, CPU-sized),
``h_denseunet_hybrid`` (the earlier reconstruction: DenseNet-161 encoder with
H-DenseUNet-style pre-activation layers, BN stem, 2x2 pools and 1x1 skip
projections; NOT the first author's network; 49,681,122 parameters).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionNet, check_level, conv_bn_relu, level_grid, preset_settings
from .dense_encoders import ENCODERS

# style: "dacn" or "hybrid" (dense_encoders); stem width; layers per block; growth;
# bottleneck (1x1 width = bottleneck * growth); head_relu: ReLU on the logits.
# dacn: decoder widths are derived from the encoder (each stage outputs the width of
#   the next skip) except ``tail``, the widths of the last two stages (strides 2, 1).
# hybrid: ``decoder`` lists all stage widths; skips are 1x1-projected where they differ.
PRESETS: dict[str, dict] = {
    "paper": {
        "style": "dacn",
        "stem": 96,
        "blocks": (6, 12, 36, 24),
        "growth": 48,
        "bottleneck": 4,
        "tail": (96, 64),
        "head_relu": True,
    },
    "small": {
        "style": "dacn",
        "stem": 32,
        "blocks": (2, 3, 4, 3),
        "growth": 16,
        "bottleneck": 4,
        "tail": (32, 32),
        "head_relu": True,
    },
    "h_denseunet_hybrid": {
        "style": "hybrid",
        "stem": 96,
        "blocks": (6, 12, 36, 24),
        "growth": 48,
        "bottleneck": 4,
        "decoder": (768, 384, 96, 96, 64),
        "head_relu": False,
    },
}


class DecoderStage(nn.Module):
    """Upsample to the skip's size, add the skip (1x1-projected if ``project``), 3x3 conv-BN-ReLU."""

    def __init__(self, cin: int, skip: int | None, cout: int, project: bool, align_corners: bool) -> None:
        super().__init__()
        if skip is not None and skip != cin and not project:
            raise ValueError(f"a skip of width {skip} cannot be added to {cin} channels without projection")
        self.project = nn.Conv2d(skip, cin, 1) if project and skip is not None and skip != cin else None
        self.conv = conv_bn_relu(cin, cout)
        self.align_corners = align_corners

    def forward(self, x: Tensor, skip: Tensor | None, size: tuple[int, int]) -> Tensor:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)
        if skip is not None:
            x = x + (skip if self.project is None else self.project(skip))
        return self.conv(x)


def decoder_widths(cfg: dict, skips: list[int]) -> list[int]:
    """Output widths of the decoder stages, deepest first (see PRESETS)."""
    depth = len(skips) + 1
    if cfg["style"] == "dacn":
        widths = list(reversed(skips))[1:] + list(cfg["tail"])
    else:
        widths = list(cfg["decoder"])
    if len(widths) != depth:
        raise ValueError(f"the decoder needs {depth} stage widths, got {widths}")
    return widths


def init_like_tf(module: nn.Module) -> None:
    """tf.contrib.layers.conv2d's initial values: Glorot-uniform weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DenseUNet(AttentionNet):
    """DenseUNet of a preset (module docstring) with one attention block.

    The block sits at the bottleneck (after the neck in DACN) or on the output
    of the decoder stage at ``attention_level`` (an output stride).
    """

    def __init__(
        self,
        preset: str = "small",
        in_channels: int = 3,
        num_classes: int = 2,
        attention: str = "joint",
        attention_level: str | int = "bottleneck",
        input_size: tuple[int, int] = (64, 64),
        attention_options: dict | None = None,
        **overrides,
    ) -> None:
        super().__init__()
        cfg = preset_settings(PRESETS, preset, "DenseUNet", overrides)
        if cfg["style"] not in ENCODERS:
            raise ValueError(f"unknown DenseUNet style {cfg['style']!r}; choose from {sorted(ENCODERS)}")
        dacn = cfg["style"] == "dacn"
        enc = ENCODERS[cfg["style"]](in_channels, cfg["stem"], tuple(cfg["blocks"]), cfg["growth"], cfg["bottleneck"])
        self.stem, self.pool, self.stages = enc.stem, enc.pool, enc.stages
        self.bottleneck_channels = enc.out
        widths = decoder_widths(cfg, enc.skips)
        depth = len(widths)
        self.bottleneck_stride = 2**depth
        self.decoder = nn.ModuleList()
        cin = enc.out
        for cout, skip in zip(widths, list(reversed(enc.skips)) + [None]):  # last stage: no skip
            self.decoder.append(DecoderStage(cin, skip, cout, project=not dacn, align_corners=dacn))
            cin = cout
        self.head = nn.Conv2d(cin, num_classes, 1, bias=not dacn)  # DACN: BN follows, no bias
        self.head_norm = nn.BatchNorm2d(num_classes) if dacn else nn.Identity()
        self.head_relu = bool(cfg["head_relu"])
        if dacn:
            init_like_tf(self)

        strides = tuple(2**k for k in range(depth + 1))
        self.attention_stride = check_level(attention_level, strides)
        self.attention_level = attention_level
        self.input_size = tuple(input_size)
        # DACN: every halving is TF 'SAME' (rounds up); hybrid: the stride-2 stem conv
        # and the padded max-pool round up, the 2x2 average pools after them round down
        grid = level_grid(self.input_size, self.attention_stride, None if dacn else 2)
        if self.attention_stride == self.bottleneck_stride:
            att_ch = enc.out
        else:
            att_ch = widths[depth - 1 - strides.index(self.attention_stride)]
        self._init_attention(attention, att_ch, grid, attention_options)

    def forward(self, x: Tensor) -> Tensor:
        size = tuple(x.shape[-2:])
        skips = [self.stem(x)]
        y = self.pool(skips[0])
        for stage in self.stages:
            skip, y = stage(y)
            skips.append(skip)
        skips = list(reversed(skips[:-1])) + [None]  # the last block's output is not a skip
        stride = self.bottleneck_stride
        if stride == self.attention_stride:
            y = self._attend(y)
        for stage, skip in zip(self.decoder, skips):
            stride //= 2
            y = stage(y, skip, size if skip is None else tuple(skip.shape[-2:]))
            if stride == self.attention_stride:
                y = self._attend(y)
        y = self.head_norm(self.head(y))
        return F.relu(y) if self.head_relu else y
