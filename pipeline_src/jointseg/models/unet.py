"""Plain U-Net baseline (Ronneberger et al. 2015, BN variant, bilinear upsampling).

Accepts the same attention arguments as DenseUNet (default none) so the same
block can be inserted at the bottleneck or a decoder level.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionNet, check_level, conv_bn_relu, level_grid, preset_settings

PRESETS: dict[str, dict] = {
    "paper": {"base": 64, "depth": 4},  # the original widths 64..1024
    "small": {"base": 16, "depth": 4},
}


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class UNet(AttentionNet):
    def __init__(
        self,
        preset: str = "small",
        in_channels: int = 3,
        num_classes: int = 2,
        attention: str = "none",
        attention_level: str | int = "bottleneck",
        input_size: tuple[int, int] = (64, 64),
        attention_options: dict | None = None,
        **overrides,
    ) -> None:
        super().__init__()
        cfg = preset_settings(PRESETS, preset, "U-Net", overrides)
        base, depth = cfg["base"], cfg["depth"]
        widths = [base * 2**k for k in range(depth + 1)]
        self.encoder = nn.ModuleList(
            [double_conv(in_channels, widths[0])] + [double_conv(widths[k - 1], widths[k]) for k in range(1, depth + 1)]
        )
        self.decoder = nn.ModuleList(
            [double_conv(widths[k + 1] + widths[k], widths[k]) for k in reversed(range(depth))]
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        self.bottleneck_stride = 2**depth
        strides = tuple(2**k for k in range(depth + 1))
        self.attention_stride = check_level(attention_level, strides)
        self.attention_level = attention_level
        self.input_size = tuple(input_size)
        grid = level_grid(self.input_size, self.attention_stride, pool_ceil_levels=0)
        self._init_attention(attention, widths[strides.index(self.attention_stride)], grid, attention_options)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        y = x
        for k, block in enumerate(self.encoder):
            if k > 0:
                y = F.max_pool2d(y, 2)
            y = block(y)
            skips.append(y)
        stride = self.bottleneck_stride
        if stride == self.attention_stride:
            y = self._attend(y)
        for block, skip in zip(self.decoder, reversed(skips[:-1])):
            stride //= 2
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
            if stride == self.attention_stride:
                y = self._attend(y)
        return self.head(y)
