"""The study's attention statistics: per-query measures of every run pooled over seeds, their
means with bootstrap CIs, the paired tests of ``pointwise`` against ``self``, and a figure.

Inputs are the per-run CSVs of ``jointseg attention-stats``
(:mod:`jointseg.evaluation.attention_stats`), whose rows say which run they are.
A query is ``(case, slice, query index)`` of one data set: the same cells for every
variant and seed, so each query's measure is averaged over seeds. The queries of one
image are not independent, so every statistic is over cases: a case's value is the mean
over its queries, CIs bootstrap the cases, and the tests pair cases.
``attention_stats.csv`` has one row per data set, variant, branch, query kind and measure
(``uniform_mean``: the measure under a uniform map, the most global one: the mean
distance to every cell, an area of 1, the object's share of the grid); the ``pointwise``
rows also carry the paired Wilcoxon test against ``self`` (each ``pointwise`` branch
against ``self``'s one map) with Holm's adjustment: one family for the locality claim's
measures (:data:`DECIDING`), one for the area.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..io_utils import UserError
from .stats import bootstrap_ci, holm, mean_std, paired_wilcoxon

MEASURES: tuple[str, ...] = ("distance", "area", "object_mass")
"""Per query: mean attention distance, effective area, mass on the query's own object (foreground only)."""
LOCAL_WHEN: dict[str, int] = {"distance": -1, "area": -1, "object_mass": +1}
"""Sign of ``pointwise - self`` that means "pointwise is the more local" (area: the more concentrated)."""
DECIDING: tuple[str, ...] = ("distance", "object_mass")
"""The measures that decide the locality claim: where the attention weight lies (near the query, on
its own object). The effective area says how spread a map is, not whether near or far, so it is
reported beside them, in a Holm family of its own, and decides nothing."""
UNIFORM: dict[str, str] = {"distance": "uniform_distance", "object_mass": "object_fraction"}
"""The column holding a measure's value under a uniform map (the effective area's is 1)."""
KINDS: tuple[str, ...] = ("foreground", "background")
QUERY_KEY: tuple[str, ...] = ("case", "slice", "query", "kind")
BOOTSTRAP_SEED = 0
STATS_COLUMNS: tuple[str, ...] = (
    "dataset",
    "variant",
    "branch",
    "kind",
    "measure",
    "unit",
    "n_queries",
    "n_cases",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "uniform_mean",
    "versus",
    "n_pairs",
    "diff_mean",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
    "p_holm",
)


def read_query_files(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Concatenate per-run query CSVs (a header-only file is a run without positional maps)."""
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: attention statistics not found; run `jointseg attention-stats` for this run")
        try:
            frame = pd.read_csv(path, dtype={"dataset": str, "variant": str, "case": str, "branch": str})
        except Exception as exc:  # noqa: BLE001 - any parse failure: one clear line
            raise UserError(f"{path}: cannot read attention statistics ({exc})") from None
        missing = [c for c in ("dataset", "variant", "seed", *QUERY_KEY, "branch", *MEASURES) if c not in frame]
        if missing:
            raise UserError(f"{path}: missing column(s) {missing}; rerun `jointseg attention-stats`")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def pooled_queries(df: pd.DataFrame) -> pd.DataFrame:
    """Each query's measures (and their uniform-map values) averaged over the seeds."""
    keys = ["dataset", "variant", "branch", *QUERY_KEY]
    if df.empty:
        return pd.DataFrame(columns=[*keys, "unit", *UNIFORM.values(), *MEASURES])
    grouped = df.groupby(keys, sort=True)
    pooled = grouped[["uniform_distance", "object_fraction", *MEASURES]].mean()
    pooled["unit"] = grouped["unit"].first()
    return pooled.reset_index()


def _case_means(frame: pd.DataFrame, measure: str) -> pd.Series:
    """Each case's mean of ``measure`` over its queries (and slices): the unit of every statistic.

    The queries of one image share that image: they are not independent, so CIs and
    tests over queries would be too narrow. Cases are.
    """
    return frame.groupby("case", sort=True)[measure].mean().dropna()


def _describe(g: pd.DataFrame, measure: str, n_boot: int) -> dict:
    per_case = _case_means(g, measure).to_numpy(float)
    mean, std, n_cases = mean_std(per_case)
    lo, hi = bootstrap_ci(per_case, n_resamples=n_boot, seed=BOOTSTRAP_SEED)
    n_queries = int(g[measure].notna().sum())
    return {"n_queries": n_queries, "n_cases": n_cases, "mean": mean, "std": std, "ci_low": lo, "ci_high": hi}


def _paired(pooled: pd.DataFrame, ds: str, branch: str, kind: str, measure: str, n_boot: int) -> dict:
    """``pointwise`` (this branch) against ``self``: per-case means over the queries both have, paired by case."""
    sel = (pooled["dataset"] == ds) & (pooled["kind"] == kind)
    pw = pooled[sel & (pooled["variant"] == "pointwise") & (pooled["branch"] == branch)].set_index(list(QUERY_KEY))
    sa = pooled[sel & (pooled["variant"] == "self")].set_index(list(QUERY_KEY))
    common = pw.index.intersection(sa.index).sort_values()
    a = _case_means(pw.loc[common].reset_index(), measure)
    b = _case_means(sa.loc[common].reset_index(), measure)
    cases = a.index.intersection(b.index)
    a, b = a.loc[cases].to_numpy(float), b.loc[cases].to_numpy(float)
    test = paired_wilcoxon(a, b)
    diff = a - b
    lo, hi = bootstrap_ci(diff, n_resamples=n_boot, seed=BOOTSTRAP_SEED)
    return {
        "versus": "self",
        "n_pairs": test["n"],
        "diff_mean": float(np.nanmean(diff)) if test["n"] else float("nan"),
        "diff_ci_low": lo,
        "diff_ci_high": hi,
        "p_value": test["p"],
    }


def attention_table(pooled: pd.DataFrame, datasets: list[str], variants: list[str], n_boot: int) -> pd.DataFrame:
    """One row per data set, variant, branch, query kind and measure (:data:`STATS_COLUMNS`)."""
    rows = []
    compare = {"pointwise", "self"} <= set(pooled["variant"])
    for (ds, v, branch, kind), g in pooled.groupby(["dataset", "variant", "branch", "kind"], sort=False):
        for measure in MEASURES:
            if measure == "object_mass" and kind != "foreground":
                continue
            row = {
                "dataset": ds,
                "variant": v,
                "branch": branch,
                "kind": kind,
                "measure": measure,
                "unit": str(g["unit"].iloc[0]) if measure == "distance" else "",
                "uniform_mean": float(g[UNIFORM[measure]].mean()) if measure in UNIFORM else 1.0,
                **_describe(g, measure, n_boot),
            }
            if compare and v == "pointwise":
                row.update(_paired(pooled, ds, branch, kind, measure, n_boot))
            rows.append(row)
    table = pd.DataFrame(rows, columns=list(STATS_COLUMNS))
    # Two families: the locality claim's tests (DECIDING measures), and the area's, reported beside them
    deciding = table["measure"].isin(DECIDING)
    table["p_holm"] = np.nan
    for family in (deciding, ~deciding):
        table.loc[family, "p_holm"] = holm(table.loc[family, "p_value"].to_numpy(float))
    order = {
        "dataset": {d: i for i, d in enumerate(datasets)},
        "variant": {v: i for i, v in enumerate(variants)},
        "kind": {k: i for i, k in enumerate(KINDS)},
        "measure": {m: i for i, m in enumerate(MEASURES)},
    }
    keys = ["dataset", "variant", "branch", "kind", "measure"]
    return table.sort_values(
        keys, key=lambda c: c.map(order[c.name]) if c.name in order else c, kind="stable"
    ).reset_index(drop=True)
