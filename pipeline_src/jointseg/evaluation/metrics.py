"""Per-case segmentation metrics under the project's metric policy (docs/science.md, "Metric policy").

Overlap metrics come from the confusion counts of one class against the rest:

    Dice = 2TP/(2TP+FP+FN)    IoU = TP/(TP+FP+FN)        sensitivity = TP/(TP+FN)
    specificity = TN/(TN+FP)  precision = TP/(TP+FP)

Surface distances follow MONAI's definitions (``HausdorffDistanceMetric(percentile=95)``
and ``SurfaceDistanceMetric(symmetric=True)``), in the units of ``spacing``
(millimetres from a NIfTI header; pixels when no spacing is known), on the directed
distances of :mod:`.surfaces`:

    HD95     = max of the two directed 95th percentiles (linear interpolation)
    ASSD     = mean of all surface distances of both directions pooled

Libraries disagree on empty masks, so the policy is applied here, *around*
the distance computation (which only runs when both masks are non-empty):

- both empty  -> Dice = IoU = 1, HD95 = ASSD = 0;
- one empty   -> Dice = IoU = 0, HD95 = ASSD = NaN (aggregation counts these
  and excludes them from distance means rather than averaging them in);
- sensitivity is NaN when the reference is empty, precision NaN when the
  prediction is empty; specificity is always defined (NaN only for the
  degenerate case of an image that is entirely this class).

Each case also records its image diagonal (:func:`image_diagonal`), the
scale the summary uses for a penalised distance (a one-empty case counts as
the largest distance the grid allows) and for distances as a percentage of
the image size (2-D photographs without spacing vary several-fold in size).

The metrics are a registry, :data:`METRICS`: a name, its function and how the
summary shows it (:class:`Metric`). The columns of ``metrics.csv`` and the
summary, the tables, the box plots, the headline metrics (``dvc metrics``, the
MLflow parent run) and the claims' directions all come from it; the penalised and
%-of-diagonal variants of each distance are derived (:func:`summary_metrics`).
A new metric is its function here and one entry in :data:`METRICS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple, Sequence

import numpy as np

NAN = float("nan")


class Counts(NamedTuple):
    """The confusion counts of one class against the rest."""

    tp: int
    fp: int
    fn: int
    tn: int


@dataclass(frozen=True)
class Metric:
    """One metric of a class: its function and how the summary shows it.

    ``compute`` takes :class:`Counts` (an overlap metric) or, for a distance, the
    directed surface distances ``(forward, backward)``; ``None`` for the summary's
    derived distances. ``unit``: ``""`` (a ratio), ``"grid"`` (the data set's
    distance unit, mm or px) or ``"%"``. ``headline``: its rank among the headline
    metrics (``metrics.json``, the MLflow parent run), ``None`` if it is not one.
    """

    label: str  # column title of the tables and figures
    compute: Callable[..., float] | None
    distance: bool = False  # NaN when exactly one mask is empty (counted, never averaged in)
    digits: int = 3  # decimals in the tables
    higher_is_better: bool = True
    unit: str = ""
    shown: bool = True  # in the summary tables and box plots (always in the CSV files)
    headline: int | None = None
    derived: str = ""  # "penalised" or "percent": the summary derives it from a distance


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else NAN


def dice(c: Counts) -> float:
    """2TP / (2TP + FP + FN); both masks empty: 1 (perfect agreement by policy)."""
    return 1.0 if c.tp + c.fp + c.fn == 0 else 2.0 * c.tp / (2 * c.tp + c.fp + c.fn)


def iou(c: Counts) -> float:
    """TP / (TP + FP + FN); both masks empty: 1."""
    return 1.0 if c.tp + c.fp + c.fn == 0 else c.tp / (c.tp + c.fp + c.fn)


def sensitivity(c: Counts) -> float:
    """TP / (TP + FN); NaN when the reference is empty."""
    return _ratio(c.tp, c.tp + c.fn)


def specificity(c: Counts) -> float:
    """TN / (TN + FP)."""
    return _ratio(c.tn, c.tn + c.fp)


def precision(c: Counts) -> float:
    """TP / (TP + FP); NaN when the prediction is empty."""
    return _ratio(c.tp, c.tp + c.fp)


def hd95(forward: np.ndarray, backward: np.ndarray) -> float:
    """The larger of the two directed 95th-percentile surface distances."""
    return float(max(np.percentile(forward, 95), np.percentile(backward, 95)))


def assd(forward: np.ndarray, backward: np.ndarray) -> float:
    """The mean of both directions' surface distances pooled."""
    return float(np.concatenate([forward, backward]).mean())


METRICS: dict[str, Metric] = {
    "dice": Metric("Dice", dice, headline=1),
    "iou": Metric("IoU", iou, headline=3),
    "hd95": Metric("HD95", hd95, distance=True, digits=2, higher_is_better=False, unit="grid", headline=2),
    "assd": Metric("ASSD", assd, distance=True, digits=2, higher_is_better=False, unit="grid", headline=4),
    "sensitivity": Metric("sensitivity", sensitivity, shown=False),
    "specificity": Metric("specificity", specificity, shown=False),
    "precision": Metric("precision", precision, shown=False),
}
"""The per-case metrics, in the column order of ``metrics.csv``."""


def distance_metrics() -> tuple[str, ...]:
    """The surface-distance metrics of :data:`METRICS` (NaN when exactly one mask is empty)."""
    return tuple(name for name, m in METRICS.items() if m.distance)


def summary_metrics() -> dict[str, Metric]:
    """Every metric of the summary: :data:`METRICS`, then per distance ``<d>_penalised`` (a one-empty
    case counts as the image diagonal), then ``<d>_pct`` (% of each case's image diagonal; pixel
    data sets only)."""
    distances = {name: m for name, m in METRICS.items() if m.distance}
    penalised = {
        f"{n}_penalised": replace(m, label=f"{m.label} penalised", compute=None, headline=None, derived="penalised")
        for n, m in distances.items()
    }
    percent = {
        f"{n}_pct": replace(m, label=f"{m.label} % diag.", compute=None, unit="%", headline=None, derived="percent")
        for n, m in distances.items()
    }
    return {**METRICS, **penalised, **percent}


def shown_metrics() -> tuple[str, ...]:
    """The per-case metrics the tables and box plots show, in registry order."""
    return tuple(name for name, m in METRICS.items() if m.shown)


def unit_of(name: str, grid_unit: str) -> str:
    """The unit of metric ``name`` (of :func:`summary_metrics`) on a data set whose distances are in
    ``grid_unit`` (mm or px): that unit, ``%``, or ``""`` for a ratio."""
    unit = summary_metrics()[name].unit
    return grid_unit if unit == "grid" else unit


def headline_metrics() -> tuple[str, ...]:
    """The headline metrics by rank (the MLflow parent run keeps them in this order)."""
    ranked = [(m.headline, name) for name, m in METRICS.items() if m.headline is not None]
    return tuple(name for _, name in sorted(ranked))


def direction(name: str) -> int:
    """+1 when a higher value of metric ``name`` (of :func:`summary_metrics`) is better, else -1."""
    return 1 if summary_metrics()[name].higher_is_better else -1


def overlap_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Every overlap metric of :data:`METRICS` of two boolean masks."""
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    tp = int(np.count_nonzero(pred & ref))
    fp = int(np.count_nonzero(pred & ~ref))
    fn = int(np.count_nonzero(~pred & ref))
    counts = Counts(tp, fp, fn, int(pred.size) - tp - fp - fn)
    return {name: m.compute(counts) for name, m in METRICS.items() if not m.distance}


def surface_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None) -> dict[str, float]:
    """Every distance metric of :data:`METRICS` of two boolean masks (MONAI's definitions, empty-mask
    policy applied).

    ``spacing`` has one entry per array axis; ``None`` means unit spacing (pixels).
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    names = distance_metrics()
    if not has_pred and not has_ref:
        return dict.fromkeys(names, 0.0)
    if has_pred != has_ref:
        return dict.fromkeys(names, NAN)
    from .surfaces import directed_distances  # lazy: scipy.ndimage only where a distance is computed

    forward, backward = directed_distances(pred, ref, spacing)
    return {name: METRICS[name].compute(forward, backward) for name in names}


def image_diagonal(shape: Sequence[int], spacing: Sequence[float] | None = None) -> float:
    """Length of the grid's diagonal: ``sqrt(sum((shape * spacing)**2))``.

    In the units of ``spacing`` (mm from a NIfTI header), or pixels when
    ``spacing`` is ``None``. No surface distance on the grid can exceed it.
    """
    extent = np.asarray(shape, dtype=float)
    if spacing is not None:
        if len(spacing) != extent.size:
            raise ValueError(f"spacing {tuple(spacing)} has {len(spacing)} entries for a {extent.size}-D grid")
        extent = extent * np.asarray(spacing, dtype=float)
    return float(np.sqrt(np.sum(extent**2)))


def case_dice(pred, label, num_classes: int) -> np.ndarray:
    """Foreground Dice per class of one case (2-D image or 3-D volume of class indices).

    :func:`overlap_metrics`'s Dice: both empty -> 1, the project's metric policy (MONAI
    ``compute_dice`` with ``ignore_empty=False`` gives the same; the tests check it).
    Training's validation scores with it.
    """
    pred, label = np.asarray(pred), np.asarray(label)
    return np.array([overlap_metrics(pred == k, label == k)["dice"] for k in range(1, num_classes)])


def case_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    classes: Sequence[int],
    spacing: Sequence[float] | None = None,
) -> list[dict]:
    """Metrics of one case, one dict per foreground class (``{"class": k, "dice": ..., ...}``).

    ``pred`` and ``ref`` are class-index label arrays of the same shape (2-D or
    3-D); ``classes`` the foreground class indices to score (background 0 is
    never scored, even if listed); ``spacing`` the physical size of one pixel /
    voxel per axis, or ``None`` for pixels.
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    if spacing is not None:
        spacing = tuple(float(s) for s in spacing)
        if len(spacing) != ref.ndim:
            raise ValueError(f"spacing {spacing} has {len(spacing)} entries for a {ref.ndim}-D array")
        if not all(math.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"spacing {spacing} must be positive and finite")
    rows = []
    for k in sorted({int(c) for c in classes if int(c) != 0}):
        p, r = pred == k, ref == k
        row: dict = {"class": k}
        row.update(overlap_metrics(p, r))
        row.update(surface_metrics(p, r, spacing))
        rows.append({"class": k, **{m: row[m] for m in METRICS}})  # the registry's order
    return rows
