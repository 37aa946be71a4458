"""Unified spatial attention: named variants of one module (SCIENCE.md section 2).

``build(variant, channels, size, **options)`` returns a module mapping
(N, C, H, W) to the same shape for exactly ``size`` = (H, W); every module but
``none`` has ``attention_map(x, query=(h, w)) -> (N, B, H, W)``.
Any term set is reachable: ``build("custom", C, size, terms=("E1", "E2", "E3", "E4"))``
or a named variant with overridden options.
"""

from __future__ import annotations

from torch import nn

from ..variants import VARIANTS
from .module import BRANCHES, COMBINES, JointAttention, NoAttention, size_error



def build(variant: str, channels: int, size: tuple[int, int], **options) -> nn.Module:
    """Build attention ``variant`` for ``channels`` and feature ``size`` (H, W).

    ``options`` override the variant's entries / JointAttention defaults
    (terms, branches, combine, key_reduction, value_reduction, chunk, checkpoint).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown attention variant {variant!r}; choose from {sorted(VARIANTS)}")
    if variant == "none":
        return NoAttention()
    if variant == "custom" and "terms" not in options:
        raise ValueError("variant 'custom' needs terms=(...), e.g. terms=('E1', 'E2', 'E3', 'E4')")
    kwargs = {**VARIANTS[variant], **options}
    return JointAttention(channels, size, variant=variant, **kwargs)


__all__ = ["VARIANTS", "BRANCHES", "COMBINES", "JointAttention", "NoAttention", "build", "size_error"]
