"""Unified spatial attention: named variants of one module.

    y_i = x_i + W_o sum_j softmax_j(s_ij) W_v x_j,   s_ij = sum of chosen terms
    E1 = theta(x_i)^T phi(x_j)  (non-local)      E2 = [F(x_i)]_{j-i}  (PSANet)
    E3 = u^T phi(x_j)                            E4 = v_{j-i}

``build(variant, channels, size, **options)`` returns a module mapping
(N, C, H, W) to the same shape for exactly ``size`` = (H, W); every module but
``none`` has ``attention_map(x, query=(h, w)) -> (N, B, H, W)`` and
``gates()`` (the zero-initialised scales that make it start as the identity).
Any term set is reachable: ``build("custom", C, size, terms=("E1", "E2", "E3", "E4"))``
or a named variant with overridden options.

Study-wide options (``model.attention_options``, the same for every variant;
each applies where it means something and is ignored elsewhere):

- ``e1_scale``: ``"none"`` (default; non-local's embedded Gaussian) | ``"sqrt"``.
- ``structure``: ``"unified"`` (default) | ``"psanet"``: how a point-wise-only
  block (terms == ("E2",), e.g. ``pointwise`` and the PA half of ``parallel``)
  is built; ``"psanet"`` is PSANet's published block (psanet.PSABlock).
- ``psa_reduction``: C_r = C // psa_reduction for ``structure="psanet"`` (default 4).
- ``precision``: ``"fp32"`` (default; fp32 attention inside autocast) | ``"autocast"`` (base.py).

``cbam`` (cbam.py) is a gate, not an attention over positions: it takes none
of these options and has no attention map (``has_attention_map`` False).
"""

from __future__ import annotations

from torch import nn

from ..variants import VARIANTS
from . import terms as T
from .base import NoAttention, size_error
from .cbam import CBAM
from .heads import self_heads
from .module import COMBINES, JointAttention
from .parallel import ParallelAttention
from .predictor import BRANCHES
from .psanet import PSABlock

STRUCTURES = ("unified", "psanet")


def build(variant: str, channels: int, size: tuple[int, int], **options) -> nn.Module:
    """Build attention ``variant`` for ``channels`` and feature ``size`` (H, W).

    ``options`` override the variant's entries / JointAttention defaults
    (terms, branches, combine, e1_scale, key_reduction, value_reduction, chunk,
    checkpoint) and choose the point-wise structure (structure, psa_reduction).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown attention variant {variant!r}; choose from {sorted(VARIANTS)}")
    if variant == "none":
        return NoAttention()
    spec = {**VARIANTS[variant], **options}
    T.e1_factor(spec.get("e1_scale", "none"), 1)  # validate even where E1 is absent
    if spec.get("block") == "cbam":
        return CBAM(channels, size, variant=variant)
    if "heads" in spec:
        return self_heads(channels, size, variant=variant, **spec)
    if "parallel" in spec:
        if "terms" in options:
            raise ValueError(f"variant {variant!r} takes the term sets of its parts; do not pass terms")
        parts = [build(part, channels, size, **options) for part in spec["parallel"]]
        return ParallelAttention(parts, variant=variant)
    if variant == "custom" and "terms" not in options:
        raise ValueError("variant 'custom' needs terms=(...), e.g. terms=('E1', 'E2', 'E3', 'E4')")
    structure = spec.pop("structure", "unified")
    reduction = spec.pop("psa_reduction", 4)
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")
    if structure == "psanet" and tuple(spec["terms"]) == ("E2",):
        keep = {k: spec[k] for k in ("branches", "chunk", "checkpoint", "precision") if k in spec}
        return PSABlock(channels, size, reduction=reduction, variant=variant, **keep)
    return JointAttention(channels, size, variant=variant, **spec)


__all__ = [
    "VARIANTS",
    "BRANCHES",
    "CBAM",
    "COMBINES",
    "STRUCTURES",
    "JointAttention",
    "NoAttention",
    "PSABlock",
    "ParallelAttention",
    "build",
    "has_attention_map",
    "size_error",
]


def has_attention_map(block: nn.Module | None) -> bool:
    """Whether ``block`` (a model's ``attention``) has maps over positions to draw or measure."""
    return block is not None and not isinstance(block, NoAttention) and getattr(block, "has_attention_map", True)
