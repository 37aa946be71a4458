"""Two complete attention blocks side by side, their residual branches summed.

    y = x + (PA(x) - x) + (SA(x) - x)

This is how DANet (Fu et al., CVPR 2019) combines its position and channel
attentions: each module has its own value and output projection, and their
outputs are added. Here PA is the ``pointwise`` block and SA the ``self``
block, so ``parallel`` vs ``joint`` isolates where E1 and E2 meet: in one
softmax (joint) or only in the output (parallel).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ParallelAttention(nn.Module):
    """Sum of the residual branches of ``parts`` (each maps C -> C at one size).

    ``attention_map`` concatenates the parts' slices in the order of ``parts``
    (for the variant ``parallel``: collect, distribute, then self's content).
    """

    def __init__(self, parts: list[nn.Module], variant: str = "parallel") -> None:
        super().__init__()
        if len(parts) < 2:
            raise ValueError("a parallel block needs at least two parts")
        self.variant = variant
        self.parts = nn.ModuleList(parts)
        self.size = parts[0].size
        self.channels = parts[0].channels
        self.branches = tuple(b for p in parts for b in p.branches)

    @classmethod
    def from_options(
        cls, channels: int, size: tuple[int, int], variant: str, build, parts: tuple[str, ...], **options
    ) -> ParallelAttention:
        """The variants ``parts`` (each built by ``build`` with the study's ``options``), side by side."""
        if "terms" in options:
            raise ValueError(f"variant {variant!r} takes the term sets of its parts; do not pass terms")
        return cls([build(part, channels, size, **options) for part in parts], variant=variant)

    def extra_repr(self) -> str:
        return f"variant={self.variant}, branches={self.branches}"

    def gates(self) -> list[nn.Parameter]:
        """The zero-initialised scales of all parts (all zero: the block is the identity)."""
        return [g for p in self.parts for g in p.gates()]

    def check_size(self, x: Tensor) -> None:
        """Raise the size error unless x has the size the parts were built for."""
        self.parts[0].check_size(x)

    def forward(self, x: Tensor) -> Tensor:
        self.check_size(x)
        y = x
        for part in self.parts:
            y = y + (part(x) - x)
        return y

    def attention_map(self, x: Tensor, query: tuple[int, int]) -> Tensor:
        """Probabilities (N, B, H, W): the parts' slices, concatenated in order."""
        return torch.cat([p.attention_map(x, query) for p in self.parts], dim=1)
