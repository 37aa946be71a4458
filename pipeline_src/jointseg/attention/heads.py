"""``self_pair``: the parameter-matched control of ``self`` for ``joint``.

``joint`` differs from ``self`` in two ways: E2, and two branches with a C/2
value each (at the paper bottleneck, C = 2112 on 8x8: 18.3 M attention
parameters against 8.9 M). ``self_pair`` removes the second difference: two
E1 heads side by side, each a ``self`` block with its own theta, phi, value
(C / value_reduction) and output, their residuals summed (as ``parallel``
sums its parts). Two heads with C' = C/2 hold 2.6 % fewer parameters than
``joint`` (its E2 offset tables); each head's theta/phi width is therefore
chosen so that the pair holds as many parameters as ``joint`` built with the
same options (C' = 1112 instead of 1056 at the paper bottleneck). Joint vs
self_pair then differ by E2 alone.
"""

from __future__ import annotations

import torch
from torch import nn

from . import terms as T
from .module import JointAttention
from .parallel import ParallelAttention


class SelfHead(JointAttention):
    """A ``self`` block (E1 only) whose theta and phi have ``key_channels`` outputs; its branch is ``head``."""

    def __init__(self, channels: int, size: tuple[int, int], key_channels: int, head: str, **options) -> None:
        super().__init__(channels, size, terms=("E1",), **options)
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.e1_factor = T.e1_factor(self.e1_scale, key_channels)
        self.branches = (head,)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def matched_key_channels(channels: int, size: tuple[int, int], heads: int, target: int, **options) -> int:
    """The theta/phi width per head that brings ``heads`` heads closest to ``target`` parameters.

    A head holds 2 k (C + 1) parameters in theta and phi (k = key width) plus a
    part that does not depend on k; both are read off heads built on the meta
    device (no memory, no initialisation).
    """
    with torch.device("meta"):
        rest = _count(SelfHead(channels, size, 1, "head", **options)) - 2 * (channels + 1)
    return max(1, round((target / heads - rest) / (2 * (channels + 1))))


class SelfHeads(ParallelAttention):
    """``heads`` :class:`SelfHead` blocks summed, parameter-matched to variant ``match``."""

    @classmethod
    def from_options(
        cls, channels: int, size: tuple[int, int], variant: str, build, heads: int, match: str, **options
    ) -> SelfHeads:
        """Heads whose theta/phi width brings the pair to the parameters of ``match`` built with ``options``."""
        if heads < 2:
            raise ValueError(f"a head pair needs at least 2 heads, got {heads}")
        if "terms" in options:
            raise ValueError(f"variant {variant!r} is E1 only; do not pass terms")
        with torch.device("meta"):
            target = _count(build(match, channels, size, **options))
        head_options = {k: v for k, v in options.items() if k not in ("structure", "psa_reduction", "key_reduction")}
        key_channels = matched_key_channels(channels, size, heads, target, **head_options)
        parts = [
            SelfHead(channels, size, key_channels, f"head{h + 1}", variant=variant, **head_options)
            for h in range(heads)
        ]
        return cls(parts, variant=variant)
