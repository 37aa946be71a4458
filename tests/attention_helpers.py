"""The attention test cases (variant, options) and a parameter perturbation, shared by the attention tests."""

from __future__ import annotations

import torch

from jointseg.attention import BLOCKS, VARIANTS, block_name

# the named variants whose block has attention over positions (cbam is a gate: tests/test_cbam.py)
NAMED = [
    v
    for v in VARIANTS
    if v not in ("none", "custom") and getattr(BLOCKS[block_name(VARIANTS[v])], "has_attention_map", True)
]
PSANET = {"structure": "psanet"}
# (variant, options): every named variant, the study options, and ablation term sets
CASES = [(v, {}) for v in NAMED] + [
    ("self", {"e1_scale": "sqrt"}),
    ("joint", {"e1_scale": "sqrt"}),
    ("pointwise", PSANET),
    ("pointwise", {**PSANET, "branches": ("distribute",), "psa_reduction": 2}),
    ("parallel", {**PSANET, "e1_scale": "sqrt"}),
    ("custom", {"terms": ("E1", "E2", "E3", "E4")}),
    ("custom", {"terms": ("E3", "E4")}),
    ("custom", {"terms": ("E1", "E2", "E4"), "combine": "sum", "branches": ("distribute",)}),
    ("pointwise", {"branches": ("collect",)}),
]
IDS = [f"{v}-" + "-".join(f"{k}={o[k]}" for k in sorted(o)) for v, o in CASES]
SIZES = [(3, 5), (4, 7), (5, 5), (1, 3)]
BRANCH_COUNT = {"pointwise": 2, "self": 1, "joint": 2, "joint_sum": 2, "parallel": 3, "self_pair": 2}


def randomised(module: torch.nn.Module, scale: float = 0.5) -> torch.nn.Module:
    """Perturb every parameter (incl. the zero-initialised output gamma and E3/E4 tables)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
    return module
