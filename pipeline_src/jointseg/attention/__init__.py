"""Unified spatial attention: named variants of one module.

    y_i = x_i + W_o sum_j softmax_j(s_ij) W_v x_j,   s_ij = sum of chosen terms
    E1 = theta(x_i)^T phi(x_j)  (non-local)      E2 = [F(x_i)]_{j-i}  (PSANet)
    E3 = u^T phi(x_j)                            E4 = v_{j-i}

``build(variant, channels, size, **options)`` (:mod:`.blocks`, the block registry) returns a module mapping
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

from ..variants import VARIANTS
from .base import NoAttention, size_error
from .blocks import BLOCKS, STRUCTURES, block_name, block_of, build, has_attention_map
from .cbam import CBAM
from .module import COMBINES, JointAttention
from .parallel import ParallelAttention
from .predictor import BRANCHES
from .psanet import PSABlock

__all__ = [
    "BLOCKS",
    "VARIANTS",
    "BRANCHES",
    "CBAM",
    "COMBINES",
    "STRUCTURES",
    "JointAttention",
    "NoAttention",
    "PSABlock",
    "ParallelAttention",
    "block_name",
    "block_of",
    "build",
    "has_attention_map",
    "size_error",
]
