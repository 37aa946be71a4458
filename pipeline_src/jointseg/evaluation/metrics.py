"""Per-case segmentation metrics under the project's metric policy.

Overlap metrics come from the confusion counts of one class against the rest:

    Dice = 2TP/(2TP+FP+FN)    IoU = TP/(TP+FP+FN)        sensitivity = TP/(TP+FN)
    specificity = TN/(TN+FP)  precision = TP/(TP+FP)

Surface distances follow MONAI's definitions (``HausdorffDistanceMetric(percentile=95)``
and ``SurfaceDistanceMetric(symmetric=True)``), in the units of ``spacing``
(millimetres from a NIfTI header; pixels when no spacing is known):

    surface  = mask XOR binary_erosion(mask)      (outside the grid counts as background)
    d(a->b)  = Euclidean distance transform of "not surface b", read at surface a
    HD95     = max of the two directed 95th percentiles (linear interpolation)
    ASSD     = mean of all surface distances of both directions pooled

They are computed with scipy.ndimage, the library MONAI itself calls on the
CPU: importing MONAI costs seconds per evaluate job, and the tests check both
numbers against MONAI's metric classes.

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
"""

from __future__ import annotations

import math
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


def _surfaces(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surface voxels of both masks, on their joint bounding box grown by one background voxel.

    The margin makes an object touching the grid's edge have its surface there
    (as MONAI's crop with ``margin=1``); cropping changes no distance, since
    every surface voxel lies inside the box.
    """
    from scipy.ndimage import binary_erosion  # lazy: keeps CSV-only tools light

    union = np.argwhere(pred | ref)
    box = tuple(slice(lo, hi + 1) for lo, hi in zip(union.min(0), union.max(0)))
    pred, ref = np.pad(pred[box], 1), np.pad(ref[box], 1)
    return pred ^ binary_erosion(pred), ref ^ binary_erosion(ref)


def _directed(surface_a: np.ndarray, surface_b: np.ndarray, spacing: Sequence[float] | None) -> np.ndarray:
    """Distances from every surface voxel of ``a`` to the nearest surface voxel of ``b``."""
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(~surface_b, sampling=spacing)[surface_a]


def surface_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None) -> dict[str, float]:
    """HD95 and ASSD of two boolean masks (MONAI's definitions, empty-mask policy applied).

    ``spacing`` has one entry per array axis; ``None`` means unit spacing (pixels).
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return {"hd95": 0.0, "assd": 0.0}
    if has_pred != has_ref:
        return {"hd95": NAN, "assd": NAN}
    sampling = None if spacing is None else [float(s) for s in spacing]
    surface_pred, surface_ref = _surfaces(pred, ref)
    forward = _directed(surface_pred, surface_ref, sampling)
    backward = _directed(surface_ref, surface_pred, sampling)
    hd95 = max(np.percentile(forward, 95), np.percentile(backward, 95))
    assd = np.concatenate([forward, backward]).mean()
    return {"hd95": float(hd95), "assd": float(assd)}


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
        rows.append({"class": k, **{m: row[m] for m in METRICS}})
    return rows
