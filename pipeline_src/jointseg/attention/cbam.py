"""CBAM (Woo et al., ECCV 2018) as Jongchan/attention-module ``MODELS/cbam.py`` builds it.

    y = x * sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))               channel gate
    z = y * sigmoid(BN(conv7x7([max_c(y), mean_c(y)])))              spatial gate

The MLP is shared: Linear C -> floor(C / 16) (bias) - ReLU - Linear -> C (bias);
the 7x7 conv (padding 3) has no bias and its BatchNorm(1) has momentum 0.01, eps
1e-5 (the source's ``BasicConv``). In this study the block sits where the joint
block sits (a block-for-block comparison) and, as in the source, it is a gate
without a residual path (there it sits on a ResNet block's residual branch).

It has no attention over positions (each position is scaled by its own gate),
so it has no ``attention_map``: ``has_attention_map`` is False, and the report
draws no attention map for it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CBAM(nn.Module):
    """CBAM for ``channels`` (``size`` is recorded; the block itself works at any size)."""

    has_attention_map = False
    branches: tuple[str, ...] = ()

    def __init__(self, channels: int, size: tuple[int, int], reduction: int = 16, variant: str = "cbam") -> None:
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(f"CBAM needs at least {reduction} channels (MLP width C // {reduction}), got {channels}")
        self.variant, self.channels, self.size = variant, channels, (int(size[0]), int(size[1]))
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.spatial_norm = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    @classmethod
    def from_options(cls, channels: int, size: tuple[int, int], variant: str, build, **options) -> CBAM:
        """CBAM takes none of the study's attention options (they are ignored)."""
        return cls(channels, size, variant=variant)

    def extra_repr(self) -> str:
        return f"variant={self.variant}, channels={self.channels}"

    def gates(self) -> list[nn.Parameter]:
        """No zero-initialised scale: CBAM does not start as the identity."""
        return []

    def forward(self, x: Tensor) -> Tensor:
        channel = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        y = x * torch.sigmoid(channel)[:, :, None, None]
        pooled = torch.cat([y.amax(dim=1, keepdim=True), y.mean(dim=1, keepdim=True)], dim=1)
        return y * torch.sigmoid(self.spatial_norm(self.spatial(pooled)))

    def attention_map(self, x: Tensor, query: tuple[int, int]) -> Tensor:
        raise ValueError("CBAM has no attention over positions (a per-position gate), hence no attention map")
