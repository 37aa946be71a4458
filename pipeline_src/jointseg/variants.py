"""The named attention variants: one plain dict from name to term-set options.

Kept free of torch so that config validation (run by Snakemake before any job)
can check variant names without importing PyTorch. ``jointseg.attention.build``
turns an entry into a module.

Note: ``joint_product`` (softmax(E1) * softmax(E2), renormalised) equals ``joint``
(softmax(E1 + E2)) exactly, since exp(a)exp(b) = exp(a + b); it is kept so the
ablation table shows that identity rather than hiding it.
"""

from __future__ import annotations

# variant -> JointAttention options; "none" has no options (identity)
VARIANTS: dict[str, dict] = {
    "none": {},
    "pointwise": {"terms": ("E2",), "branches": ("collect", "distribute"), "combine": "joint"},  # PSANet
    "self": {"terms": ("E1",), "combine": "joint"},  # non-local
    "joint": {"terms": ("E1", "E2"), "branches": ("collect",), "combine": "joint"},
    "joint_sum": {"terms": ("E1", "E2"), "branches": ("collect",), "combine": "sum"},
    "joint_product": {"terms": ("E1", "E2"), "branches": ("collect",), "combine": "product"},
    "custom": {},  # everything from **options (terms required)
}
