"""Per-case segmentation metrics under the project's metric policy.

Overlap metrics come from the confusion counts of one class against the rest:

    Dice = 2TP/(2TP+FP+FN)    IoU = TP/(TP+FP+FN)        sensitivity = TP/(TP+FN)
    specificity = TN/(TN+FP)  precision = TP/(TP+FP)

Surface distances are MONAI's (``HausdorffDistanceMetric(percentile=95)`` and
``SurfaceDistanceMetric(symmetric=True)``), in the units of ``spacing``
(millimetres from a NIfTI header; pixels when no spacing is known):

    HD95 = max of the two directed 95th-percentile surface distances
    ASSD = mean of all surface distances of both directions pooled

Libraries disagree on empty masks, so the policy is applied here, *around*
MONAI (which is only called when both masks are non-empty):

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
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

METRICS: tuple[str, ...] = ("dice", "iou", "hd95", "assd", "sensitivity", "specificity", "precision")
"""Metric names, in the column order of ``metrics.csv``."""

DISTANCE_METRICS: tuple[str, ...] = ("hd95", "assd")
"""The surface-distance metrics among :data:`METRICS` (NaN when exactly one mask is empty)."""
NAN = float("nan")


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else NAN


def overlap_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Dice, IoU, sensitivity, specificity and precision of two boolean masks."""
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    tp = int(np.count_nonzero(pred & ref))
    fp = int(np.count_nonzero(pred & ~ref))
    fn = int(np.count_nonzero(~pred & ref))
    tn = int(pred.size) - tp - fp - fn
    if tp + fp + fn == 0:  # both empty: perfect agreement by policy
        dice = iou = 1.0
    else:
        dice = 2.0 * tp / (2 * tp + fp + fn)
        iou = tp / (tp + fp + fn)
    return {
        "dice": dice,
        "iou": iou,
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
    }


def surface_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None) -> dict[str, float]:
    """HD95 and ASSD of two boolean masks (MONAI's implementation, empty-mask policy applied).

    ``spacing`` has one entry per array axis; ``None`` means unit spacing (pixels).
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return {"hd95": 0.0, "assd": 0.0}
    if has_pred != has_ref:
        return {"hd95": NAN, "assd": NAN}

    import torch  # lazy: keeps `jointseg --help` and CSV-only tools light
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    spacing_arg = None if spacing is None else [float(s) for s in spacing]
    # (batch, channel, *spatial) one-hot of a single class; include_background=True
    # because channel 0 *is* the class here.
    yp = torch.from_numpy(pred[None, None].astype(np.float32))
    yr = torch.from_numpy(ref[None, None].astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both masks are non-empty; nothing to warn about
        hd95 = compute_hausdorff_distance(yp, yr, include_background=True, percentile=95, spacing=spacing_arg)
        assd = compute_average_surface_distance(yp, yr, include_background=True, symmetric=True, spacing=spacing_arg)
    return {"hd95": float(hd95.reshape(-1)[0]), "assd": float(assd.reshape(-1)[0])}


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
        rows.append({"class": k, **{m: row[m] for m in METRICS}})
    return rows
