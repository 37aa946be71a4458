"""The named attention variants: one plain dict from name to term-set options.

Kept free of torch so that config validation (run by Snakemake before any job)
can check variant names without importing PyTorch. ``jointseg.attention.build``
turns an entry into a module.

Every form with E2 uses PSANet's two branches (collect and distribute), so
``joint`` differs from ``pointwise`` by E1 alone. ``joint_sum`` normalises E1
and E2 separately and averages the two maps (one shared value per branch);
``parallel`` runs the ``pointwise`` and the ``self`` block side by side, each
with its own value and output, and sums their residuals (as DANet does).
``self_pair`` is ``self``'s parameter-matched control for ``joint``: two E1
heads with their own values, as many parameters as ``joint`` (attention/heads.py).
``cbam`` is CBAM (Woo et al. 2018), a channel and a spatial gate with no
attention over positions, at the joint block's place (attention/cbam.py).
There is no product form: softmax(E1) * softmax(E2), renormalised, equals
softmax(E1 + E2) exactly (exp(a) exp(b) = exp(a + b)), i.e. ``joint``.
"""

from __future__ import annotations

BOTH = ("collect", "distribute")

# variant -> options for jointseg.attention.build; "none" has no options (identity);
# "block" names the class that builds them (jointseg.attention.blocks.BLOCKS; default: the
# unified block), "parts" the variants whose blocks "parallel" sums
VARIANTS: dict[str, dict] = {
    "none": {},
    "pointwise": {"terms": ("E2",), "branches": BOTH},  # PSANet
    "self": {"terms": ("E1",)},  # non-local
    "joint": {"terms": ("E1", "E2"), "branches": BOTH, "combine": "joint"},
    "joint_sum": {"terms": ("E1", "E2"), "branches": BOTH, "combine": "sum"},
    "parallel": {"block": "parallel", "parts": ("pointwise", "self")},  # PA(x) + SA(x), DANet-style
    "self_pair": {"block": "self_heads", "heads": 2, "match": "joint"},  # self, parameter-matched to joint
    "cbam": {"block": "cbam"},  # Jongchan/attention-module's CBAM
    "custom": {},  # everything from **options (terms required)
}

# variants that are a cited comparator: the claims table tests joint against each (sota_<name>)
CITED: tuple[str, ...] = ("cbam",)
