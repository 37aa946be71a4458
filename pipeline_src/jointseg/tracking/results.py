"""Test scores for MLflow: a child run's test metrics, the parent's seed means.

Names follow the summary tables: ``test_<metric>_<class name>`` per foreground
class and ``test_<metric>_mean`` over the classes, e.g. ``test_dice_lesion``,
``test_dice_mean``, ``test_hd95_mean``. A class's value is the mean over test
cases of ``metrics.csv`` (NaN excluded: a distance is undefined when exactly
one mask is empty); ``_mean`` is the unweighted mean of the class values, as a
paper's "mean Dice" over structures. The parent run gets the same names under
``<dataset>/<variant>/``, averaged over seeds (per seed, the values of
``summary.csv``). Undefined (NaN) values are not logged.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..io_utils import UserError

# The metric columns of metrics.csv (the evaluation's METRICS) and the distances summary.csv
# adds (one-empty cases penalised; percent of the image diagonal). Others are ignored.
TEST_METRICS: tuple[str, ...] = (
    "dice",
    "iou",
    "hd95",
    "assd",
    "sensitivity",
    "specificity",
    "precision",
    "hd95_penalised",
    "assd_penalised",
    "hd95_pct",
    "assd_pct",
)


def _safe(name: str) -> str:
    """A metric-name part MLflow accepts (letters, digits, ``_ - .``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "class"


def class_name(value: Any, labels: dict | None) -> str:
    """The label name of class ``value`` (``labels`` maps "1" -> "lesion"); the value itself if unnamed."""
    labels = {str(k): v for k, v in (labels or {}).items()}
    try:  # 1, 1.0 and numpy integers all mean class "1"
        number = float(value)
        key = str(int(number)) if number.is_integer() else str(value)
    except (TypeError, ValueError):
        key = str(value)
    return _safe(labels.get(key, key))


def class_scores(table, labels: dict | None, prefix: str = "") -> dict[str, float]:
    """``{prefix}test_<metric>_<class>`` (mean over the rows of each class) and
    ``{prefix}test_<metric>_mean`` (mean over classes) for every metric column of ``table``."""
    if "class" not in table.columns:
        raise UserError("metrics table has no 'class' column; rerun 'jointseg evaluate'")
    metrics = [m for m in TEST_METRICS if m in table.columns]
    if not metrics:
        raise UserError(f"metrics table has none of the columns {list(TEST_METRICS)}; rerun 'jointseg evaluate'")
    per_class = table.groupby("class", sort=True)[metrics].mean()  # pandas' mean skips NaN
    out: dict[str, float] = {}
    for metric in metrics:
        values = []
        for cls, value in per_class[metric].items():
            if math.isfinite(value):
                out[f"{prefix}test_{metric}_{class_name(cls, labels)}"] = float(value)
                values.append(float(value))
        if values:
            out[f"{prefix}test_{metric}_mean"] = sum(values) / len(values)
    return out


def read_table(path: str | Path):
    """A metrics/summary CSV (case ids stay strings)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; run 'jointseg evaluate' (or 'jointseg aggregate') first")
    return pd.read_csv(path, dtype={"case": str})


def run_scores(metrics_csv: str | Path, labels: dict | None) -> dict[str, float]:
    """A run's test metrics from its per-case ``metrics.csv``."""
    return class_scores(read_table(metrics_csv), labels)


def seed_means(summary_csv: str | Path, config: dict | None) -> dict[str, float]:
    """``<dataset>/<variant>/test_<metric>_<class|mean>``: seed means from ``summary.csv``
    (one row per data set, variant, seed and class)."""
    table = read_table(summary_csv)
    missing = [c for c in ("dataset", "variant") if c not in table.columns]
    if missing:
        raise UserError(f"{summary_csv}: no column(s) {missing}; rerun 'jointseg aggregate'")
    datasets = (config or {}).get("datasets", {})
    out: dict[str, float] = {}
    for (ds, variant), rows in table.groupby(["dataset", "variant"], sort=False):
        labels = datasets.get(ds, {}).get("labels")
        out.update(class_scores(rows, labels, prefix=f"{_safe(ds)}/{_safe(variant)}/"))
    return out


def run_id_of(run_dir: str | Path) -> str | None:
    """The MLflow run id a training recorded: ``train_done.json``, else its checkpoints."""
    run_dir = Path(run_dir)
    done = run_dir / "train_done.json"
    if done.is_file():
        run_id = json.loads(done.read_text()).get("mlflow_run_id")
        if run_id:
            return str(run_id)
    for name in ("final.pt", "latest.pt"):
        ckpt = run_dir / "checkpoints" / name
        if ckpt.is_file():
            import torch

            run_id = torch.load(ckpt, map_location="cpu", weights_only=True).get("mlflow_run_id")
            if run_id:
                return str(run_id)
    return None


def run_settings(run_dir: str | Path) -> dict:
    """The run's ``run_config.json`` (labels, tracking URI); empty if absent."""
    path = Path(run_dir) / "run_config.json"
    return json.loads(path.read_text()) if path.is_file() else {}
