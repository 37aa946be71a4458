"""``jointseg evaluate``: per-case metrics of a prediction folder against a reference folder.

Like nnU-Net's ``evaluate_folder``: files are matched by case id (the file name
without ``.nii.gz``/``.nii``/``.png``/``.npy``), every file holds class-index
labels, and the result is one row per case and foreground class::

    dataset,variant,seed,case,class,dice,iou,hd95,assd,sensitivity,specificity,precision,diagonal,unit

The run's identity (``--dataset --variant --seed``) travels in the first
columns, so summaries never parse it out of paths. Distances and ``diagonal``
(the reference grid's diagonal, :func:`~jointseg.evaluation.metrics.image_diagonal`)
are in millimetres from the reference's NIfTI header (``unit`` = ``mm``) and in
pixels for PNG / ``.npy`` files (``unit`` = ``px``). The metric policy (empty
masks, NaN rules) is :mod:`jointseg.evaluation.metrics`'.

Read ``metrics.csv`` back with :func:`read_metrics` (case ids such as ``007``
stay strings).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..io_utils import UserError, atomic_path
from .labels import list_cases, read_label
from .metrics import METRICS, case_metrics, distance_metrics, image_diagonal

RUN_COLUMNS: tuple[str, ...] = ("dataset", "variant", "seed")


def case_columns() -> tuple[str, ...]:
    """The per-case columns: case, class, every metric of the registry, the grid's diagonal and unit."""
    return ("case", "class", *METRICS, "diagonal", "unit")


def columns() -> tuple[str, ...]:
    """Every column of ``metrics.csv``: the run's identity, then :func:`case_columns`."""
    return (*RUN_COLUMNS, *case_columns())


FLOAT_FORMAT = "%.10g"
AFFINE_ATOL = 1e-4


# --- evaluation -------------------------------------------------------------------------
def match_cases(pred: dict[str, Path], ref: dict[str, Path], pred_dir: Path, ref_dir: Path) -> list[str]:
    """Sorted common case ids; :class:`UserError` listing some ids when the folders disagree."""
    only_pred = sorted(set(pred) - set(ref))
    only_ref = sorted(set(ref) - set(pred))
    if only_pred or only_ref:
        parts = []
        if only_ref:
            parts.append(f"{len(only_ref)} reference case(s) without prediction in {pred_dir}: {_some(only_ref)}")
        if only_pred:
            parts.append(f"{len(only_pred)} prediction(s) without reference in {ref_dir}: {_some(only_pred)}")
        raise UserError("unmatched case ids: " + "; ".join(parts) + ". Predict the missing cases or remove extra files")
    return sorted(pred)


def _some(ids: Sequence[str], k: int = 5) -> str:
    return ", ".join(ids[:k]) + (f" (and {len(ids) - k} more)" if len(ids) > k else "")


def _check_pair(pred_path: Path, ref_path: Path, pred, ref) -> None:
    (p, _, p_aff), (r, _, r_aff) = pred, ref
    if p.shape != r.shape:
        raise UserError(
            f"{pred_path}: shape {p.shape} differs from reference {ref_path} shape {r.shape}; "
            "predictions must be on the reference grid"
        )
    if p_aff is not None and r_aff is not None and not np.allclose(p_aff, r_aff, atol=AFFINE_ATOL):
        raise UserError(
            f"{pred_path}: affine differs from reference {ref_path} (atol {AFFINE_ATOL}); "
            "save predictions with the source image's affine"
        )


def evaluate_folders(
    pred_dir: str | Path,
    ref_dir: str | Path,
    classes: Iterable[int] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Metrics of every case in ``pred_dir`` against ``ref_dir``, one row per case and class.

    Columns :func:`case_columns`. ``classes`` defaults to every nonzero value
    found in any reference or prediction; a class absent from both masks of a
    case gets the both-empty row of the policy (Dice 1, distances 0).
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    preds = list_cases(pred_dir, "prediction")
    refs = list_cases(ref_dir, "reference")
    ids = match_cases(preds, refs, pred_dir, ref_dir)
    fixed = None if classes is None else sorted({int(c) for c in classes} - {0})
    rows: list[dict] = []
    grid: dict[str, dict] = {}  # case -> its diagonal and unit
    seen: set[int] = set()
    for cid in tqdm(ids, desc="evaluate", unit="case", disable=not progress, file=sys.stderr):
        pred, ref = read_label(preds[cid]), read_label(refs[cid])
        _check_pair(preds[cid], refs[cid], pred, ref)
        present = (set(np.unique(pred[0]).tolist()) | set(np.unique(ref[0]).tolist())) - {0}
        seen |= {int(v) for v in present}
        spacing = ref[1]  # the reference's header is the truth (affines agree when both exist)
        grid[cid] = {"diagonal": image_diagonal(ref[0].shape, spacing), "unit": "px" if spacing is None else "mm"}
        for row in case_metrics(pred[0], ref[0], fixed if fixed is not None else sorted(present), spacing):
            rows.append({"case": cid, **row, **grid[cid]})
    if fixed is None:  # classes seen elsewhere but absent from a case: both-empty rows
        empty = np.zeros((1, 1), np.uint8)
        have = {(r["case"], r["class"]) for r in rows}
        for cid in ids:
            for k in sorted(seen):
                if (cid, k) not in have:
                    rows.append({"case": cid, **case_metrics(empty, empty, [k])[0], **grid[cid]})
    if not rows:
        raise UserError(
            f"{ref_dir}: no foreground class to evaluate (all labels are 0); pass --labels to score classes anyway"
        )
    df = pd.DataFrame(rows, columns=list(case_columns()))
    return df.sort_values(["case", "class"], kind="stable").reset_index(drop=True)


def with_run(df: pd.DataFrame, dataset: str, variant: str, seed: int) -> pd.DataFrame:
    """``df`` (per-case rows) with the run's identity as its first columns (:func:`columns`)."""
    for name, value in (("dataset", dataset), ("variant", variant)):
        if not str(value).strip():
            raise UserError(f"--{name} must be a non-empty name")
    if int(seed) < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    out = df.assign(dataset=str(dataset), variant=str(variant), seed=int(seed))
    return out[list(columns())]


# --- metrics.csv ------------------------------------------------------------------------
def write_metrics(df: pd.DataFrame, path: str | Path) -> None:
    """Write a metrics table atomically with fixed float formatting (stable bytes)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format=FLOAT_FORMAT, na_rep="nan", lineterminator="\n")


def read_metrics(path: str | Path) -> pd.DataFrame:
    """Read a ``metrics.csv`` (columns :func:`columns`), ids as strings; :class:`UserError` if malformed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: metrics file not found; run `jointseg evaluate` for this run first")
    try:
        df = pd.read_csv(path, dtype={"dataset": str, "variant": str, "case": str, "unit": str})
    except Exception as exc:
        raise UserError(f"{path}: cannot read metrics CSV ({exc})") from None
    expected = columns()
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {missing}; expected {','.join(expected)} "
            "(re-run `jointseg evaluate` with --dataset/--variant/--seed)"
        )
    if df.empty:
        raise UserError(f"{path}: metrics file has no rows; re-run `jointseg evaluate`")
    return df[list(expected)]


def summary_text(df: pd.DataFrame) -> str:
    """A short per-class table of mean metrics (distances over defined values only)."""
    lines = [f"{'class':>5} {'n':>5} " + " ".join(f"{m:>11}" for m in METRICS) + f" {'nan_dist':>8}"]
    for k, g in df.groupby("class", sort=True):
        means = [g[m].mean(skipna=True) for m in METRICS]
        lines.append(
            f"{k:>5} {len(g):>5} "
            + " ".join(f"{v:>11.4f}" for v in means)
            + f" {int(g[distance_metrics()[0]].isna().sum()):>8}"
        )
    return "\n".join(lines)
