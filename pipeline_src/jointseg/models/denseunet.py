"""2-D DenseUNet of H-DenseUNet (Li et al., TMI 2018), SCIENCE.md section 3.

Encoder: three 3x3 conv stem (first stride 2) + 3x3 max-pool stride 2, then
DenseNet blocks with transitions (1x1 conv halving + 2x2 average pool).
Decoder: per stage x2 bilinear upsampling, add the skip (1x1-projected when
the widths differ, H-DenseUNet's ``line0``), 3x3 conv-BN-ReLU. The attention
block sits at the bottleneck or on the decoder output of a chosen stride.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionNet, check_level, conv_bn_relu, level_grid, preset_settings

PRESETS: dict[str, dict] = {
    # DenseNet-161 encoder, H-DenseUNet decoder (about 48.8 M parameters)
    "paper": {"stem": 96, "blocks": (6, 12, 36, 24), "growth": 48, "bottleneck": 4,
              "decoder": (768, 384, 96, 96, 64)},
    # CPU preset: same layout, far fewer and narrower layers
    "small": {"stem": 32, "blocks": (2, 3, 4, 3), "growth": 16, "bottleneck": 4,
              "decoder": (96, 64, 32, 32, 32)},
}


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bottleneck * growth) - BN-ReLU-3x3 conv (growth), concatenated."""

    def __init__(self, cin: int, growth: int, bottleneck: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
            nn.Conv2d(cin, bottleneck * growth, 1, bias=False),
            nn.BatchNorm2d(bottleneck * growth), nn.ReLU(inplace=True),
            nn.Conv2d(bottleneck * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def dense_block(cin: int, layers: int, growth: int, bottleneck: int) -> tuple[nn.Sequential, int]:
    block = nn.Sequential(*[DenseLayer(cin + i * growth, growth, bottleneck) for i in range(layers)])
    return block, cin + layers * growth


def transition(cin: int) -> tuple[nn.Sequential, int]:
    cout = cin // 2
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2)), cout


class DecoderStage(nn.Module):
    """Upsample to the skip's size, add the (projected) skip, 3x3 conv-BN-ReLU."""

    def __init__(self, cin: int, skip: int | None, cout: int) -> None:
        super().__init__()
        # H-DenseUNet projects a skip with a 1x1 conv only where widths differ
        self.project = nn.Conv2d(skip, cin, 1) if skip is not None and skip != cin else None
        self.conv = conv_bn_relu(cin, cout)

    def forward(self, x: Tensor, skip: Tensor | None, size: tuple[int, int]) -> Tensor:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if skip is not None:
            x = x + (skip if self.project is None else self.project(skip))
        return self.conv(x)


class DenseUNet(AttentionNet):
    def __init__(self, preset: str = "small", in_channels: int = 3, num_classes: int = 2,
                 attention: str = "joint", attention_level: str | int = "bottleneck",
                 input_size: tuple[int, int] = (64, 64), attention_options: dict | None = None,
                 **overrides) -> None:
        super().__init__()
        cfg = preset_settings(PRESETS, preset, "DenseUNet", overrides)
        stem, growth, bn = cfg["stem"], cfg["growth"], cfg["bottleneck"]
        self.stem = nn.Sequential(conv_bn_relu(in_channels, stem, stride=2),
                                  conv_bn_relu(stem, stem), conv_bn_relu(stem, stem))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        skips = [stem]  # widths of the skips at strides 2, 4, 8, ...
        self.blocks, self.transitions = nn.ModuleList(), nn.ModuleList()
        ch = stem
        for i, layers in enumerate(cfg["blocks"]):
            block, ch = dense_block(ch, layers, growth, bn)
            self.blocks.append(block)
            if i < len(cfg["blocks"]) - 1:
                skips.append(ch)
                trans, ch = transition(ch)
                self.transitions.append(trans)
        self.norm = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(inplace=True))
        depth = len(cfg["blocks"]) + 1  # stride of bottleneck = 2**depth
        if len(cfg["decoder"]) != depth:
            raise ValueError(f"decoder needs {depth} widths, got {cfg['decoder']}")
        self.bottleneck_stride = 2**depth
        self.decoder = nn.ModuleList()
        # decoder stage k outputs stride 2**(depth-1-k); its skip has that stride
        skip_widths = list(reversed(skips)) + [None]  # last stage (stride 1) has no skip
        cin = ch
        for cout, skip in zip(cfg["decoder"], skip_widths):
            self.decoder.append(DecoderStage(cin, skip, cout))
            cin = cout
        self.head = nn.Conv2d(cin, num_classes, 1)

        strides = tuple(2**k for k in range(depth + 1))
        self.attention_stride = check_level(attention_level, strides)
        self.attention_level = attention_level
        self.input_size = tuple(input_size)
        grid = level_grid(self.input_size, self.attention_stride)
        if self.attention_stride == self.bottleneck_stride:
            att_ch = ch
        else:
            att_ch = cfg["decoder"][depth - 1 - strides.index(self.attention_stride)]
        self._init_attention(attention, att_ch, grid, attention_options)

    def forward(self, x: Tensor) -> Tensor:
        size = tuple(x.shape[-2:])
        skips = [self.stem(x)]
        y = self.pool(skips[0])
        for i, block in enumerate(self.blocks):
            y = block(y)
            if i < len(self.transitions):
                skips.append(y)
                y = self.transitions[i](y)
        y = self.norm(y)
        stride = self.bottleneck_stride
        if stride == self.attention_stride:
            y = self._attend(y)
        skips = list(reversed(skips)) + [None]
        for stage, skip in zip(self.decoder, skips):
            stride //= 2
            y = stage(y, skip, size if skip is None else tuple(skip.shape[-2:]))
            if stride == self.attention_stride:
                y = self._attend(y)
        return self.head(y)
