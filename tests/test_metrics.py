"""Metric policy, one test per row, cross-checked against MONAI and scipy; the image diagonal."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import HausdorffDistanceMetric, SurfaceDistanceMetric
from scipy.ndimage import binary_erosion, distance_transform_edt

from jointseg.evaluation.metrics import METRICS, case_metrics, image_diagonal, overlap_metrics, surface_metrics


# --- independent references -------------------------------------------------------------
def scipy_surface(pred: np.ndarray, ref: np.ndarray, spacing=None) -> tuple[float, float]:
    """HD95 and ASSD from scipy's exact EDT (surface = mask minus its 1-connected erosion)."""
    spacing = [1.0] * pred.ndim if spacing is None else list(spacing)
    edge_p = pred & ~binary_erosion(pred)
    edge_r = ref & ~binary_erosion(ref)
    d_pr = distance_transform_edt(~edge_r, sampling=spacing)[edge_p]
    d_rp = distance_transform_edt(~edge_p, sampling=spacing)[edge_r]
    hd95 = max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))
    return float(hd95), float(np.concatenate([d_pr, d_rp]).mean())


def monai_surface(pred: np.ndarray, ref: np.ndarray, spacing=None) -> tuple[float, float]:
    """The MONAI metric classes the policy names, on a one-channel one-hot batch."""
    yp = torch.from_numpy(pred[None, None].astype(np.float32))
    yr = torch.from_numpy(ref[None, None].astype(np.float32))
    hd = HausdorffDistanceMetric(include_background=True, percentile=95)
    sd = SurfaceDistanceMetric(include_background=True, symmetric=True)
    hd(yp, yr, spacing=spacing)
    sd(yp, yr, spacing=spacing)
    return float(hd.aggregate()), float(sd.aggregate())


def blob(shape, centre, radii) -> np.ndarray:
    grid = np.indices(shape, dtype=float)
    d = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii))
    return d <= 1.0


# --- overlap rows -----------------------------------------------------------------------
def test_overlap_formulas_match_hand_counts():
    pred = np.array([1, 1, 1, 0, 0, 0, 0, 1, 0, 0], bool)
    ref = np.array([1, 1, 0, 1, 1, 0, 0, 0, 0, 0], bool)
    tp, fp, fn, tn = 2, 2, 2, 4
    m = overlap_metrics(pred, ref)
    assert m["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["iou"] == pytest.approx(tp / (tp + fp + fn))
    assert m["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["precision"] == pytest.approx(tp / (tp + fp))


@pytest.mark.parametrize("shape", [(12, 9), (6, 7, 5)])
def test_both_empty_is_perfect_with_zero_distances(shape):
    empty = np.zeros(shape, np.uint8)
    (row,) = case_metrics(empty, empty, [1])
    assert row["dice"] == 1.0 and row["iou"] == 1.0
    assert row["hd95"] == 0.0 and row["assd"] == 0.0
    assert math.isnan(row["sensitivity"]) and math.isnan(row["precision"])
    assert row["specificity"] == 1.0


@pytest.mark.parametrize("shape", [(12, 9), (6, 7, 5)])
def test_one_empty_gives_zero_overlap_and_nan_distances(shape):
    empty = np.zeros(shape, np.uint8)
    full = empty.copy()
    full[(slice(1, 4),) * len(shape)] = 1
    (missed,) = case_metrics(empty, full, [1])  # prediction empty
    assert missed["dice"] == 0.0 and missed["iou"] == 0.0
    assert math.isnan(missed["hd95"]) and math.isnan(missed["assd"])
    assert missed["sensitivity"] == 0.0
    assert math.isnan(missed["precision"])  # nothing predicted
    assert missed["specificity"] == 1.0
    (spurious,) = case_metrics(full, empty, [1])  # reference empty
    assert spurious["dice"] == 0.0 and spurious["iou"] == 0.0
    assert math.isnan(spurious["hd95"]) and math.isnan(spurious["assd"])
    assert math.isnan(spurious["sensitivity"])  # nothing to find
    assert spurious["precision"] == 0.0
    assert spurious["specificity"] < 1.0


def test_specificity_defined_when_only_background_and_class_missing():
    ref = np.zeros((4, 4), np.uint8)
    pred = np.zeros((4, 4), np.uint8)
    pred[0, 0] = 1
    (row,) = case_metrics(pred, ref, [1])
    assert row["specificity"] == pytest.approx(15 / 16)


# --- distance rows ----------------------------------------------------------------------
def test_single_voxel_distances_isotropic_and_anisotropic():
    pred = np.zeros((10, 10), bool)
    ref = np.zeros((10, 10), bool)
    pred[2, 3] = True
    ref[5, 7] = True
    assert surface_metrics(pred, ref) == pytest.approx({"hd95": 5.0, "assd": 5.0})
    expected = math.hypot(3 * 2.0, 4 * 0.5)
    got = surface_metrics(pred, ref, (2.0, 0.5))
    assert got == pytest.approx({"hd95": expected, "assd": expected})
    assert scipy_surface(pred, ref, (2.0, 0.5)) == pytest.approx((expected, expected))
    assert monai_surface(pred, ref, (2.0, 0.5)) == pytest.approx((expected, expected))


def test_identical_masks_have_zero_distance():
    m = blob((20, 20), (10, 10), (5, 7))
    assert surface_metrics(m, m, (0.7, 1.3)) == {"hd95": 0.0, "assd": 0.0}


@pytest.mark.parametrize(
    "shape,spacing",
    [((48, 40), None), ((48, 40), (0.5, 2.0)), ((24, 30, 20), None), ((24, 30, 20), (1.0, 0.8, 3.0))],
)
def test_distances_match_monai_metric_classes_and_scipy(shape, spacing):
    rng = np.random.default_rng(len(shape) + (0 if spacing is None else 1))
    centre = np.array(shape) / 2
    ref = blob(shape, centre, np.array(shape) / 4)
    pred = blob(shape, centre + rng.uniform(-3, 3, len(shape)), np.array(shape) / 3.5)
    pred[tuple(int(s * 0.85) for s in shape)] = True  # an outlier voxel far from the surface
    ours = surface_metrics(pred, ref, spacing)
    hd_m, asd_m = monai_surface(pred, ref, spacing)
    hd_s, asd_s = scipy_surface(pred, ref, spacing)
    assert ours["hd95"] == pytest.approx(hd_m, rel=1e-6)
    assert ours["assd"] == pytest.approx(asd_m, rel=1e-6)
    assert ours["hd95"] == pytest.approx(hd_s, rel=1e-5)
    assert ours["assd"] == pytest.approx(asd_s, rel=1e-5)
    assert ours["hd95"] > 0 and ours["assd"] > 0


def test_hd95_is_max_of_directed_percentiles_not_pooled():
    # pred = ref plus a far island: the pred->ref direction carries the large tail
    ref = np.zeros((60, 60), bool)
    ref[10:30, 10:30] = True
    pred = ref.copy()
    pred[50:53, 50:53] = True
    ours = surface_metrics(pred, ref)
    hd_s, _ = scipy_surface(pred, ref)
    assert ours["hd95"] == pytest.approx(hd_s, rel=1e-5)
    assert ours["hd95"] > 15  # a pooled percentile would be diluted by the exact-match ref->pred side


def test_several_classes_with_one_missing_3d_anisotropic():
    shape, spacing = (20, 24, 16), (1.0, 1.0, 2.5)
    ref = np.zeros(shape, np.uint8)
    ref[blob(shape, (6, 8, 8), (4, 5, 4))] = 1
    ref[blob(shape, (14, 16, 8), (3, 4, 3))] = 2
    pred = np.zeros(shape, np.uint8)
    pred[blob(shape, (7, 8, 8), (4, 5, 3))] = 1  # class 2 missed entirely
    rows = case_metrics(pred, ref, [0, 1, 2, 3], spacing)
    assert [r["class"] for r in rows] == [1, 2, 3]  # background excluded, sorted
    assert set(rows[0]) == {"class", *METRICS}
    one, two, three = rows
    hd_s, asd_s = scipy_surface(pred == 1, ref == 1, spacing)
    hd_m, asd_m = monai_surface(pred == 1, ref == 1, spacing)
    assert one["hd95"] == pytest.approx(hd_s, rel=1e-5) == pytest.approx(hd_m, rel=1e-6)
    assert one["assd"] == pytest.approx(asd_s, rel=1e-5)
    assert 0 < one["dice"] < 1
    assert two["dice"] == 0.0 and math.isnan(two["hd95"]) and math.isnan(two["assd"])
    assert three["dice"] == 1.0 and three["hd95"] == 0.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="shape"):
        case_metrics(np.zeros((3, 3)), np.zeros((3, 4)), [1])
    with pytest.raises(ValueError, match="spacing"):
        case_metrics(np.zeros((3, 3)), np.zeros((3, 3)), [1], spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        case_metrics(np.zeros((3, 3)), np.zeros((3, 3)), [1], spacing=(1.0, 0.0))


# --- image diagonal -----------------------------------------------------------------------
def test_image_diagonal_in_pixels_and_millimetres():
    assert image_diagonal((100, 200)) == pytest.approx(100 * math.sqrt(5))  # a 200 x 100 px image
    assert image_diagonal((3, 4)) == 5.0
    # 10 x 12 x 6 voxels of 1 x 1 x 2.5 mm: extents 10, 12, 15 mm
    assert image_diagonal((10, 12, 6), (1.0, 1.0, 2.5)) == pytest.approx(math.sqrt(100 + 144 + 225))
    with pytest.raises(ValueError, match="spacing"):
        image_diagonal((10, 12), (1.0, 1.0, 1.0))


def test_no_surface_distance_exceeds_the_diagonal():
    """Opposite corners: the largest distance the grid allows stays below the diagonal (the penalty)."""
    pred = np.zeros((30, 50), bool)
    ref = np.zeros((30, 50), bool)
    pred[0, 0] = True
    ref[-1, -1] = True
    spacing = (0.7, 1.3)
    assert surface_metrics(pred, ref, spacing)["hd95"] < image_diagonal(pred.shape, spacing)


@pytest.mark.parametrize("ndim", [2, 3])
def test_random_masks_touching_the_border_match_monai(ndim):
    """Noisy multi-component masks, several touching the grid's edge, random spacings."""
    rng = np.random.default_rng(ndim)
    shape = (32, 28) if ndim == 2 else (16, 18, 12)
    for _ in range(12):
        pred = rng.random(shape) < rng.uniform(0.05, 0.5)
        ref = rng.random(shape) < rng.uniform(0.05, 0.5)
        ref[(0,) * ndim] = pred[(-1,) * ndim] = True  # surface on the grid's edge
        spacing = tuple(rng.uniform(0.3, 3.0, ndim))
        ours = surface_metrics(pred, ref, spacing)
        hd_m, asd_m = monai_surface(pred, ref, spacing)
        assert ours["hd95"] == pytest.approx(hd_m, rel=1e-6)
        assert ours["assd"] == pytest.approx(asd_m, rel=1e-6)
