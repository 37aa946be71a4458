"""``jointseg headline-metrics``: headline means of every data set x variant, as JSON for ``dvc metrics``.

    jointseg headline-metrics --out results/summary/metrics.json --metrics <run>/metrics.csv ...

Writes ``{dataset: {variant: {dice, iou, hd95, assd, runs}}}`` (the registry's headline metrics,
:data:`jointseg.evaluation.metrics.METRICS`, in its order): per run (the
``dataset, variant, seed`` columns of its metrics), the mean over cases and
classes; then the mean over seeds. NaN distances (one mask empty) are excluded,
as in the summary tables. Values are rounded to 6 digits so that
``dvc metrics diff`` shows real changes only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..evaluation.metrics import METRICS
from .collect import read_metrics_files


def headline_columns() -> tuple[str, ...]:
    """The headline metrics in the registry's (column) order."""
    return tuple(name for name, m in METRICS.items() if m.headline is not None)


def headline(paths: Sequence[str | Path]) -> dict:
    """``{dataset: {variant: {metric: mean over seeds, "runs": n}}}`` from per-run metrics files."""
    return headline_means(read_metrics_files(paths))


def headline_means(df: pd.DataFrame) -> dict:
    """:func:`headline` of per-case metrics rows already read (also the DVC plots' test Dice)."""
    out: dict[str, dict[str, dict]] = {}
    headline = headline_columns()
    for (dataset, variant), g in sorted(df.groupby(["dataset", "variant"], sort=False), key=lambda kv: kv[0]):
        per_run = g.groupby("seed")[list(headline)].mean()  # pandas' mean skips NaN
        means: dict = {}
        for m in headline:
            values = [float(x) for x in per_run[m] if not math.isnan(x)]
            means[m] = round(sum(values) / len(values), 6) if values else None
        out.setdefault(str(dataset), {})[str(variant)] = {**means, "runs": int(len(per_run))}
    return out
