"""What every segmentation net here shares: one attention block at a chosen level."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..attention import build as build_attention


def conv_bn_relu(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    """Post-activation conv (no bias: BN follows) - BN - ReLU; the U-Net, DACN and decoder unit.

    Padding ``kernel // 2``; at stride 1 with an odd kernel that equals
    TensorFlow's 'SAME' padding.
    """
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def preset_settings(presets: dict[str, dict], preset: str, family: str, overrides: dict) -> dict:
    """The named preset's settings updated with ``overrides``.

    A clear error for an unknown preset name or an override the preset does not have
    (so that a misspelt or inapplicable option is never silently ignored).
    """
    if preset not in presets:
        raise ValueError(f"unknown {family} preset {preset!r}; choose from {sorted(presets)}")
    unknown = sorted(set(overrides) - set(presets[preset]))
    if unknown:
        raise ValueError(f"{family} preset {preset!r} has no setting(s) {unknown}; it has {sorted(presets[preset])}")
    return {**presets[preset], **overrides}


class AttentionNet(nn.Module):
    """Base class: holds ``self.attention`` and exposes its map.

    Subclasses call ``_init_attention`` once they know the channel count and
    grid of the level, and apply ``self._attend(feature)`` there.
    """

    attention: nn.Module | None
    attention_grid: tuple[int, int]
    attention_level: str | int

    def _init_attention(self, variant: str, channels: int, grid: tuple[int, int], options: dict | None) -> None:
        self.attention_grid = grid
        self.attention_channels = channels
        self.attention = None if variant == "none" else build_attention(variant, channels, grid, **(options or {}))

    def _attend(self, feature: Tensor) -> Tensor:
        return feature if self.attention is None else self.attention(feature)

    def attention_map(self, x: Tensor, query: tuple[int, int]) -> Tensor:
        """(N, B, h, w) probabilities of ``query`` (attention-grid coordinates) for input x.

        Runs in eval mode (restored afterwards) so that looking at a map never
        updates BatchNorm running statistics.
        """
        if self.attention is None:
            raise ValueError("this model has no attention block (attention='none')")
        captured: list[Tensor] = []
        handle = self.attention.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        was_training = self.training
        try:
            self.eval()
            with torch.no_grad():
                self(x)
                return self.attention.attention_map(captured[0], query)
        finally:
            handle.remove()
            self.train(was_training)


def level_grid(size: tuple[int, int], stride: int, pool_ceil_levels: int | None = None) -> tuple[int, int]:
    """Feature size (H, W) at output ``stride`` (a power of 2) for an input of ``size``.

    The first ``pool_ceil_levels`` halvings round up (TensorFlow 'SAME' or
    padded stride-2 ops: ceil(s / 2)), later ones round down (unpadded 2x2
    pooling: floor(s / 2)); ``None`` means every halving rounds up.
    """
    out = []
    for s in size:
        for k in range(int(math.log2(stride))):
            ceil = pool_ceil_levels is None or k < pool_ceil_levels
            s = -(-s // 2) if ceil else s // 2
        out.append(s)
    return out[0], out[1]


def check_level(level: str | int, strides: tuple[int, ...]) -> int:
    """Resolve ``attention_level`` to a stride; ``bottleneck`` is the deepest."""
    if level == "bottleneck":
        return max(strides)
    if isinstance(level, str) and level.isdigit():
        level = int(level)
    if level not in strides:
        raise ValueError(f"attention_level must be 'bottleneck' or one of {sorted(strides)}, got {level!r}")
    return int(level)
