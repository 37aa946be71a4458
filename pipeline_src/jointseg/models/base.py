"""What every segmentation net here shares: one attention block at a chosen level."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..attention import build as build_attention


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv-BN-ReLU, the decoder/stem unit."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def preset_settings(presets: dict[str, dict], preset: str, family: str, overrides: dict) -> dict:
    """The named preset's settings updated with ``overrides``; a clear error for an unknown name."""
    if preset not in presets:
        raise ValueError(f"unknown {family} preset {preset!r}; choose from {sorted(presets)}")
    return {**presets[preset], **overrides}


class AttentionNet(nn.Module):
    """Base class: holds ``self.attention`` and exposes its map.

    Subclasses call ``_init_attention`` once they know the channel count and
    grid of the level, and apply ``self._attend(feature)`` there.
    """

    attention: nn.Module | None
    attention_grid: tuple[int, int]
    attention_level: str | int

    def _init_attention(self, variant: str, channels: int, grid: tuple[int, int],
                        options: dict | None) -> None:
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


def level_grid(size: tuple[int, int], stride: int, pool_ceil_levels: int = 2) -> tuple[int, int]:
    """Feature size at output ``stride`` for an encoder whose first
    ``log2`` min(stride, 4) halvings round up (stride-2 conv, padded max-pool)
    and later ones round down (average pooling)."""
    out = []
    for s in size:
        for k in range(int(math.log2(stride))):
            s = -(-s // 2) if k < pool_ceil_levels else s // 2
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
