"""How balanced each attention variant is: its worst normalised deficit to the best variant.

Defined before any result was seen (docs/science.md, "Balance"). Over the variants
:data:`BALANCE_VARIANTS` present in the study, for each family ``f`` = (data set,
class, metric) with metric in :data:`BALANCE_METRICS`, ``m(v, f)`` is variant ``v``'s
mean over the test cases (each case averaged over seeds) and

    d(v, f) = |m(v, f) - m(best, f)| / |m(best, f) - m(worst, f)|,

``best`` and ``worst`` following the metric's direction (higher Dice, lower HD95 is
better); a family where best == worst is degenerate: every variant's deficit is 0
there (nobody is behind). ``balance(v) = max_f d(v, f)``: 0 means never behind
anywhere, 1 the worst variant somewhere. Its 95 % CI, and that of each difference
``balance(joint) - balance(v)``, come from one case bootstrap: every resample draws
each data set's cases with replacement (the same cases for every variant, so the
comparison stays paired) and recomputes every family, best, worst and balance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluation.metrics import direction

BALANCE_VARIANTS: tuple[str, ...] = ("none", "pointwise", "self", "joint")
BALANCE_METRICS: dict[str, int] = {m: direction(m) for m in ("dice", "hd95_penalised")}
"""metric -> +1 when higher is better, -1 when lower is better (the registry's direction; the
penalised HD95 counts a missed structure as the image diagonal, so a variant cannot gain by
missing one). The choice of the two metrics was fixed before any result (docs/science.md)."""
REQUIRED: tuple[str, ...] = ("pointwise", "self", "joint")
BOOTSTRAP_SEED = 0
COLUMNS: tuple[str, ...] = (
    "variant",
    "balance",
    "ci_low",
    "ci_high",
    "n_families",
    "n_degenerate",
    "worst_family",
    "joint_minus",
    "diff_ci_low",
    "diff_ci_high",
)


def family_values(pooled: pd.DataFrame, variants: list[str]) -> tuple[list[np.ndarray], list[str]]:
    """Per data set an array ``(V, F_ds, n_cases)`` of signed values (higher = better), and the family names.

    Only the cases that every variant has for every class enter a data set's families.
    """
    arrays, names = [], []
    for ds, g in pooled[pooled["variant"].isin(variants)].groupby("dataset", sort=False):
        classes = sorted(g["class"].unique())
        per_run = [set(g.loc[(g["variant"] == v) & (g["class"] == k), "case"]) for v in variants for k in classes]
        cases = sorted(set.intersection(*per_run))
        if not cases:
            continue
        table = g.set_index(["variant", "class", "case"])
        block = np.empty((len(variants), len(classes) * len(BALANCE_METRICS), len(cases)))
        for f, (k, (metric, sign)) in enumerate((k, m) for k in classes for m in BALANCE_METRICS.items()):
            for i, v in enumerate(variants):
                block[i, f] = sign * table.loc[[(v, k, c) for c in cases], metric].to_numpy(float)
            names.append(f"{ds} / class {k} / {metric}")
        arrays.append(block)
    return arrays, names


def deficits(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(d(v, f) of shape (..., V, F), degenerate families (..., F))`` of signed family means ``(..., V, F)``."""
    best, worst = means.max(axis=-2, keepdims=True), means.min(axis=-2, keepdims=True)
    span = best - worst
    deficit = np.where(span > 0, (best - means) / np.where(span > 0, span, 1.0), 0.0)
    return deficit, span[..., 0, :] == 0


def _resampled_means(arrays: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, V, F)``: family means over each data set's cases drawn with replacement."""
    parts = []
    for block in arrays:
        n = block.shape[-1]
        idx = rng.integers(0, n, size=(n_boot, n))
        parts.append(np.stack([block[:, :, i].mean(-1) for i in idx]))
    return np.concatenate(parts, axis=-1)


def balance_table(pooled: pd.DataFrame, n_boot: int = 2000) -> pd.DataFrame:
    """Balance of every variant of :data:`BALANCE_VARIANTS` in ``pooled`` (per-case metrics pooled over seeds).

    Empty when any of :data:`REQUIRED` is missing or no family has a case.
    """
    variants = [v for v in BALANCE_VARIANTS if v in set(pooled["variant"])]
    if not set(REQUIRED) <= set(variants):
        return pd.DataFrame(columns=list(COLUMNS))
    arrays, names = family_values(pooled, variants)
    if not arrays:
        return pd.DataFrame(columns=list(COLUMNS))
    means = np.concatenate([b.mean(-1) for b in arrays], axis=-1)  # (V, F)
    deficit, degenerate = deficits(means)
    point = deficit.max(-1)
    boot = deficits(_resampled_means(arrays, n_boot, np.random.default_rng(BOOTSTRAP_SEED)))[0].max(-1)  # (R, V)
    joint = variants.index("joint")
    rows = []
    for i, v in enumerate(variants):
        diff = boot[:, joint] - boot[:, i]
        rows.append(
            {
                "variant": v,
                "balance": float(point[i]),
                "ci_low": float(np.percentile(boot[:, i], 2.5)),
                "ci_high": float(np.percentile(boot[:, i], 97.5)),
                "n_families": len(names),
                "n_degenerate": int(degenerate.sum()),
                "worst_family": names[int(np.argmax(deficit[i]))] if point[i] > 0 else "",
                "joint_minus": float(point[joint] - point[i]) if v != "joint" else float("nan"),
                "diff_ci_low": float(np.percentile(diff, 2.5)) if v != "joint" else float("nan"),
                "diff_ci_high": float(np.percentile(diff, 97.5)) if v != "joint" else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))
