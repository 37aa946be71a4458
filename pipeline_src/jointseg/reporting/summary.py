"""The statistics policy: derived distance metrics, per-seed summaries, pooled statistics.

Distance policies (HD95 and ASSD are NaN when exactly one mask is empty):

- ``hd95``/``assd``: the mean over the cases where the distance is defined;
  the undefined ones are counted (``n_nan_distance``, ``n_nan``), never averaged in.
- ``<d>_penalised``: a one-empty case counts as the image diagonal (mm or px),
  the largest distance the grid allows, so a variant that misses structures
  cannot look better by having fewer defined distances.
- ``<d>_pct`` (data sets whose distances are in pixels, i.e. without spacing):
  ``100 * d / diagonal`` per case, because 2-D photographs (ISIC) vary several-fold
  in size and a pixel distance means different things on each.

Statistics are computed on per-case values averaged over the seeds in which they
are defined. For each (data set, class, metric) the paired Wilcoxon tests of the
reference variant against every other variant form one family; ``p_holm`` is
Holm's step-down adjustment within it.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from ..evaluation.metrics import distance_metrics, summary_metrics
from .stats import bootstrap_ci, holm, mean_std, paired_wilcoxon

BOOTSTRAP_SEED = 0  # one fixed generator seed for every CI: reruns give the same intervals


def all_metrics() -> tuple[str, ...]:
    """Every metric of the summary (:func:`~jointseg.evaluation.metrics.summary_metrics`), in the column
    order of every per-case, per-seed and pooled table."""
    return tuple(summary_metrics())


def metrics_for(unit: str) -> tuple[str, ...]:
    """The metrics reported for a data set whose distances are in ``unit`` (``mm`` or ``px``)."""
    return tuple(name for name, m in summary_metrics().items() if unit == "px" or m.derived != "percent")


def add_derived(df: pd.DataFrame) -> pd.DataFrame:
    """Per-case rows plus the penalised and (pixel data sets) percentage distances."""
    out = df.copy()
    diagonal = out["diagonal"].astype(float)
    pixels = out["unit"] == "px"
    for m in distance_metrics():
        out[f"{m}_penalised"] = out[m].astype(float).fillna(diagonal)
        out[f"{m}_pct"] = (100.0 * out[m].astype(float) / diagonal).where(pixels)
    return out


def sort_rows(df: pd.DataFrame, datasets: list[str], variants: list[str], keys: Sequence[str]) -> pd.DataFrame:
    """Sort by ``keys`` with data sets, variants and metrics in their report order."""
    order = {
        "dataset": {d: i for i, d in enumerate(datasets)},
        "variant": {v: i for i, v in enumerate(variants)},
        "metric": {m: i for i, m in enumerate(all_metrics())},
    }

    def key(col: pd.Series) -> pd.Series:
        return col.map(order[col.name]) if col.name in order else col

    return df.sort_values(list(keys), key=key, kind="stable").reset_index(drop=True)


def seed_summary(
    df: pd.DataFrame, datasets: list[str], variants: list[str], n_params: dict[tuple[str, str], int]
) -> pd.DataFrame:
    """One row per data set, variant, seed and class: metric means (NaN excluded), counts, parameters."""
    rows = []
    for (ds, v, s, k), g in df.groupby(["dataset", "variant", "seed", "class"], sort=False):
        row = {
            "dataset": ds,
            "variant": v,
            "seed": int(s),
            "class": int(k),
            "n_cases": int(g["case"].nunique()),
            "n_nan_distance": int(g[distance_metrics()[0]].isna().sum()),  # distances are NaN together
            "n_params": int(n_params[(ds, v)]),
        }
        for m in all_metrics():
            vals = g[m].to_numpy(dtype=float)
            row[m] = float(np.nanmean(vals)) if np.any(~np.isnan(vals)) else float("nan")
        rows.append(row)
    return sort_rows(pd.DataFrame(rows), datasets, variants, ["dataset", "variant", "seed", "class"])


def pooled_cases(df: pd.DataFrame) -> pd.DataFrame:
    """Per case and class, each metric averaged over the seeds in which it is defined.

    Adds ``n_nan_seeds``: in how many seeds the case's distances were undefined.
    """
    keys = ["dataset", "variant", "class", "case"]
    grouped = df.groupby(keys, sort=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN groups stay NaN
        pooled = grouped[list(all_metrics())].mean()  # pandas' mean skips NaN
    pooled["n_nan_seeds"] = grouped[distance_metrics()[0]].apply(lambda s: int(s.isna().sum()))
    return pooled.reset_index()


def _describe(vals: np.ndarray, n_boot: int) -> dict:
    mean, std, n = mean_std(vals)
    lo, hi = bootstrap_ci(vals, n_resamples=n_boot, seed=BOOTSTRAP_SEED)
    return {
        "n_cases": int(len(vals)),
        "n": n,
        "n_nan": int(np.isnan(vals).sum()),
        "mean": mean,
        "std": std,
        "ci_low": lo,
        "ci_high": hi,
    }


def _family(by_variant: dict[str, pd.DataFrame], metric: str, reference: str, n_boot: int) -> list[dict]:
    """One metric of one (data set, class): a row per variant, tests against ``reference``, Holm."""
    ref = by_variant.get(reference)
    rows = []
    for v, gv in by_variant.items():
        vals = gv[metric].to_numpy(dtype=float)
        row = {
            "metric": metric,
            "variant": v,
            **_describe(vals, n_boot),
            "n_nan_case_seed": int(gv["n_nan_seeds"].sum()) if summary_metrics()[metric].distance else 0,
            "reference": reference,
            "n_pairs": 0,
            "wilcoxon_statistic": float("nan"),
            "p_value": float("nan"),
        }
        if ref is not None and v != reference:
            common = ref.index.intersection(gv.index).sort_values()
            test = paired_wilcoxon(ref.loc[common, metric].to_numpy(float), gv.loc[common, metric].to_numpy(float))
            row.update(n_pairs=test["n"], wilcoxon_statistic=test["statistic"], p_value=test["p"])
        rows.append(row)
    for row, p in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"] = float(p)
    return rows


STATS_COLUMNS: tuple[str, ...] = (
    "dataset",
    "class",
    "metric",
    "variant",
    "n_cases",
    "n",
    "n_nan",
    "n_nan_case_seed",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "reference",
    "n_pairs",
    "wilcoxon_statistic",
    "p_value",
    "p_holm",
)


def compute_stats(
    pooled: pd.DataFrame,
    datasets: list[str],
    variants: list[str],
    reference: str,
    units: dict[str, str],
    n_boot: int = 2000,
) -> pd.DataFrame:
    """Per data set, class, metric and variant: n, mean ± std, bootstrap CI, Wilcoxon vs ``reference``, Holm."""
    rows = []
    for (ds, k), g in pooled.groupby(["dataset", "class"], sort=False):
        by_variant = {v: gv.set_index("case") for v, gv in g.groupby("variant", sort=False)}
        for metric in metrics_for(units[ds]):
            rows += [{"dataset": ds, "class": int(k), **r} for r in _family(by_variant, metric, reference, n_boot)]
    stats = pd.DataFrame(rows, columns=list(STATS_COLUMNS))
    return sort_rows(stats, datasets, variants, ["dataset", "class", "metric", "variant"])
