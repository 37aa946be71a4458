"""Test scores for MLflow: a child run's test metrics, the parent's headline seed means.

Names follow the summary's columns: ``test_<column>_<class name>`` per foreground
class and ``test_<column>_mean`` over the classes, e.g. ``test_dice_lesion``,
``test_dice_mean``, ``test_hd95_penalised_mean``. The score columns are read
from the table itself (:func:`score_columns`): every numeric column that is not
the run's identity, a count (``n_…``) or the image diagonal, so a child carries
every score ``summary.csv`` has for its run. From ``summary.csv`` (one row per
run and class) a class's value is that row's; from a run's ``metrics.csv`` it is
the mean over test cases (NaN excluded: a distance is undefined when exactly one
mask is empty). ``_mean`` is the unweighted mean of the class values, as a
paper's "mean Dice" over structures. The parent run gets a few headline
``<dataset>/<variant>/test_<metric>_mean`` seed means (:func:`parent_metrics`).
Undefined (NaN) values are not logged.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..evaluation.metrics import headline_metrics
from ..io_utils import UserError

# Columns that say which run, case or class a row is, or how large an image is: never scores.
IDENTITY_COLUMNS = frozenset({"dataset", "variant", "seed", "case", "class", "diagonal", "unit"})
PARENT_METRICS_MAX = 40  # MLflow's chart view draws one chart per metric: keep the parent's view short
RUN_KEYS = ("dataset", "variant", "seed")


def score_columns(table) -> list[str]:
    """The score columns of a metrics or summary table, in its order (see the module docstring)."""
    import pandas as pd  # lazy: `jointseg track start` (the workflow's onstart) reads no table

    return [
        c
        for c in table.columns
        if c not in IDENTITY_COLUMNS and not c.startswith("n_") and pd.api.types.is_numeric_dtype(table[c])
    ]


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
    metrics = score_columns(table)
    if not metrics:
        raise UserError("metrics table has no score column (dice, iou, ...); rerun 'jointseg evaluate'")
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
    import pandas as pd  # lazy: see score_columns

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; run 'jointseg evaluate' (or 'jointseg aggregate') first")
    return pd.read_csv(path, dtype={"case": str})


def run_scores(metrics_csv: str | Path, labels: dict | None, summary_csv: str | Path | None = None) -> dict[str, float]:
    """A run's test metrics: its rows of ``summary_csv`` when given (every summary score), else
    its per-case ``metrics.csv``. The run is the one ``metrics.csv`` names (its first row)."""
    metrics = read_table(metrics_csv)
    if summary_csv is None:
        return class_scores(metrics, labels)
    missing = [c for c in RUN_KEYS if c not in metrics.columns]
    if missing or metrics.empty:
        raise UserError(f"{metrics_csv}: no run columns {list(RUN_KEYS)} or no rows; rerun 'jointseg evaluate'")
    summary = _summary_table(summary_csv)
    run = {k: metrics[k].iloc[0] for k in RUN_KEYS}
    rows = summary[
        (summary["dataset"] == str(run["dataset"]))
        & (summary["variant"] == str(run["variant"]))
        & (summary["seed"] == int(run["seed"]))
    ]
    if rows.empty:
        raise UserError(f"{summary_csv}: no rows of run {run}; rerun 'jointseg aggregate' with its metrics.csv")
    return class_scores(rows, labels)


def _summary_table(summary_csv: str | Path):
    table = read_table(summary_csv)
    missing = [c for c in (*RUN_KEYS, "class") if c not in table.columns]
    if missing:
        raise UserError(f"{summary_csv}: no column(s) {missing}; rerun 'jointseg aggregate'")
    return table.astype({"dataset": str, "variant": str})


def seed_means(summary_csv: str | Path, config: dict | None) -> dict[str, float]:
    """``<dataset>/<variant>/test_<metric>_<class|mean>``: seed means of every score of ``summary.csv``
    (one row per data set, variant, seed and class)."""
    table = _summary_table(summary_csv)
    datasets = (config or {}).get("datasets", {})
    out: dict[str, float] = {}
    for (ds, variant), rows in table.groupby(["dataset", "variant"], sort=False):
        labels = datasets.get(ds, {}).get("labels")
        out.update(class_scores(rows, labels, prefix=f"{_safe(ds)}/{_safe(variant)}/"))
    return out


def parent_metrics(summary_csv: str | Path, config: dict | None) -> dict[str, float]:
    """The parent run's metrics: ``<dataset>/<variant>/test_<metric>_mean`` seed means for the
    registry's headline metrics by rank (:func:`~jointseg.evaluation.metrics.headline_metrics`), as
    many whole metrics as keep the total within :data:`PARENT_METRICS_MAX` (the first always; then
    HD95, IoU, ASSD). Every other number is in the parent's per-run table and on the children."""
    means = seed_means(summary_csv, config)
    out: dict[str, float] = {}
    for metric in headline_metrics():
        chosen = {k: v for k, v in means.items() if k.endswith(f"/test_{metric}_mean")}
        if out and len(out) + len(chosen) > PARENT_METRICS_MAX:
            break
        out.update(chosen)
    return dict(list(out.items())[:PARENT_METRICS_MAX])


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
            import torch  # lazy: only for runs that never wrote train_done.json

            run_id = torch.load(ckpt, map_location="cpu", weights_only=True).get("mlflow_run_id")
            if run_id:
                return str(run_id)
    return None


def run_settings(run_dir: str | Path) -> dict:
    """The run's ``run_config.json`` (labels, tracking URI); empty if absent."""
    path = Path(run_dir) / "run_config.json"
    return json.loads(path.read_text()) if path.is_file() else {}
