"""Attention U-Net (Oktay et al., MIDL 2018): the 2-D form of ``unet_CT_multi_att_dsv_3D``
of ozan-oktay/Attention-Gated-Networks (PyTorch, 3-D only), with the repo's
``GridAttentionBlock2D``.

- widths (64, 128, 256, 512, 1024) / ``feature_scale`` (4 by default: 16 ... 256);
- conv unit (``UnetConv3``): two 3x3 conv (bias) - BN - ReLU; 2x2 max-pool;
- after the centre a gating 1x1 conv (bias) - BN - ReLU (``UnetGridGatingSignal3``);
- at levels 2-4 two grid-attention gates (mode ``concatenation``, sub-sample
  (2, 2)) on the skip, combined by a 1x1 conv (bias) - BN - ReLU; gate g of level
  4 is the gating signal, of levels 3 and 2 the decoder output below;
- up (``UnetUp3_CT``): x2 bilinear up-sampling, concat [skip, up], conv unit;
- fused deep supervision: per level a 1x1 conv to the classes, up-sampled to
  full size, concatenated (levels 1..4) and a 1x1 conv to the classes.

A gate (``_GridAttentionBlockND._concatenation``): theta = 2x2 stride-2 conv
without bias on x, phi = 1x1 conv with bias on g resized to theta's grid,
sigmoid(psi(ReLU(theta + phi))) resized to x's grid multiplies x, then W =
1x1 conv (bias) - BN. Resizing is bilinear with ``align_corners=False`` (the
repo's ``F.upsample`` / ``nn.Upsample`` under PyTorch >= 0.4). Initial values
as the repo's ``init_weights(kaiming)``: conv weights Kaiming-normal (fan_in),
BN weights normal(1, 0.02), BN biases 0.

2,379,344 parameters for RGB and 2 classes (feature_scale 4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import preset_settings
from .baseline import Baseline

PRESETS: dict[str, dict] = {
    "paper": {"feature_scale": 4},  # the repo's default and its config's value
    "small": {"feature_scale": 16},  # widths 4 ... 64, for CPUs
}
BASE_WIDTHS = (64, 128, 256, 512, 1024)


def conv_bias_bn_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvUnit(nn.Module):
    """``UnetConv3`` in 2-D: two 3x3 conv (bias) - BN - ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = conv_bias_bn_relu(cin, cout)
        self.conv2 = conv_bias_bn_relu(cout, cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


class GridGate(nn.Module):
    """``GridAttentionBlock2D``, mode concatenation, sub-sample factor ``sub``; returns (W(a * x), a)."""

    def __init__(self, channels: int, gating: int, inter: int, sub: int = 2) -> None:
        super().__init__()
        self.W = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.theta = nn.Conv2d(channels, inter, sub, stride=sub, bias=False)
        self.phi = nn.Conv2d(gating, inter, 1)
        self.psi = nn.Conv2d(inter, 1, 1)

    def forward(self, x: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        theta = self.theta(x)
        phi = F.interpolate(self.phi(g), size=theta.shape[-2:], mode="bilinear", align_corners=False)
        gate = torch.sigmoid(self.psi(F.relu(theta + phi)))
        gate = F.interpolate(gate, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.W(gate * x), gate


class MultiGate(nn.Module):
    """``MultiAttentionBlock``: two gates on the same skip, combined by 1x1 conv (bias) - BN - ReLU."""

    def __init__(self, channels: int, gating: int, inter: int) -> None:
        super().__init__()
        self.gate_block_1 = GridGate(channels, gating, inter)
        self.gate_block_2 = GridGate(channels, gating, inter)
        self.combine_gates = conv_bias_bn_relu(2 * channels, channels, kernel=1)

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        y1, _ = self.gate_block_1(x, g)
        y2, _ = self.gate_block_2(x, g)
        return self.combine_gates(torch.cat([y1, y2], dim=1))


class UpUnit(nn.Module):
    """``UnetUp3_CT`` in 2-D: conv unit of concat [skip, x2 bilinear up-sampled input]."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvUnit(cin + cout, cout)

    def forward(self, skip: Tensor, x: Tensor) -> Tensor:
        up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv(torch.cat([skip, up], dim=1))


class Dsv(nn.Module):
    """``UnetDsv3`` in 2-D: 1x1 conv (bias) to the classes, bilinear up-sampling by ``scale``."""

    def __init__(self, cin: int, classes: int, scale: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, classes, 1)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.conv(x), scale_factor=self.scale, mode="bilinear", align_corners=False)


class AttentionUNet(Baseline):
    """Attention U-Net of a preset (module docstring); ``forward`` returns the fused logits."""

    name = "attention_unet"

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
        cfg = preset_settings(PRESETS, preset, "Attention U-Net", overrides)
        f = [int(w / cfg["feature_scale"]) for w in BASE_WIDTHS]
        self.setup(attention, input_size, 16)
        # attribute names and order as in unet_CT_multi_att_dsv_3D.__init__
        self.conv1 = ConvUnit(in_channels, f[0])
        self.conv2 = ConvUnit(f[0], f[1])
        self.conv3 = ConvUnit(f[1], f[2])
        self.conv4 = ConvUnit(f[2], f[3])
        self.center = ConvUnit(f[3], f[4])
        self.gating = conv_bias_bn_relu(f[4], f[4], kernel=1)
        self.attentionblock2 = MultiGate(f[1], f[2], f[1])
        self.attentionblock3 = MultiGate(f[2], f[3], f[2])
        self.attentionblock4 = MultiGate(f[3], f[4], f[3])
        self.up_concat4 = UpUnit(f[4], f[3])
        self.up_concat3 = UpUnit(f[3], f[2])
        self.up_concat2 = UpUnit(f[2], f[1])
        self.up_concat1 = UpUnit(f[1], f[0])
        self.dsv4 = Dsv(f[3], num_classes, 8)
        self.dsv3 = Dsv(f[2], num_classes, 4)
        self.dsv2 = Dsv(f[1], num_classes, 2)
        self.dsv1 = nn.Conv2d(f[0], num_classes, 1)
        self.final = nn.Conv2d(4 * num_classes, num_classes, 1)
        for m in self.modules():  # the repo's init_weights(init_type="kaiming")
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        self.check_size(tuple(x.shape[-2:]))
        conv1 = self.conv1(x)
        conv2 = self.conv2(F.max_pool2d(conv1, 2))
        conv3 = self.conv3(F.max_pool2d(conv2, 2))
        conv4 = self.conv4(F.max_pool2d(conv3, 2))
        center = self.center(F.max_pool2d(conv4, 2))
        gating = self.gating(center)
        up4 = self.up_concat4(self.attentionblock4(conv4, gating), center)
        up3 = self.up_concat3(self.attentionblock3(conv3, up4), up4)
        up2 = self.up_concat2(self.attentionblock2(conv2, up3), up3)
        up1 = self.up_concat1(conv1, up2)
        fused = torch.cat([self.dsv1(up1), self.dsv2(up2), self.dsv3(up3), self.dsv4(up4)], dim=1)
        return self.final(fused)
