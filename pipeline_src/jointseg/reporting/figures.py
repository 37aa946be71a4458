"""Figures of the summary: box plots and qualitative grids (learning curves:
:mod:`.figures_curves`; attention maps: :mod:`.figures_attention`).

Every figure is drawn with matplotlib's Agg backend and saved as PNG with the
metadata stripped (no "Software" / date chunk), atomically, so two runs on the
same inputs write byte-identical files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib
import nibabel as nib
from matplotlib import patheffects
from PIL import Image

matplotlib.use("Agg")  # headless, deterministic rasteriser; before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colors as mcolors  # noqa: E402

from ..evaluation.metrics import METRICS, shown_metrics, unit_of  # noqa: E402
from ..io_utils import atomic_path  # noqa: E402
from ..paths import IMAGE_SUFFIXES, find_case_file  # noqa: E402

# class index -> overlay colour (index 0 transparent)
LABEL_COLOURS = ["#00000000", "#32d74b", "#0a84ff", "#ff375f", "#ffd60a", "#bf5af2", "#ff9f0a"]
SEED_STYLES = ["-", "--", ":", "-."]  # one line style per seed, cycled
# Every figure fits a 1000-px browser window whole (the Snakemake report's image pane does not
# scroll up to a tall figure's top): at most MAX_HEIGHT_IN inches at DPI dots per inch.
DPI = 110
MAX_HEIGHT_IN = 8.0
LOSS_HALF_LIFE = 0.025  # the smoothed loss: EMA with a half-life of this fraction of the run's steps
MARKER_MAX_POINTS = 40  # validation curves with at most this many points get a marker per point
PANELS_PER_ROW = 4  # learning curves: one column per variant, wrapped after this many


def fit_height(n_rows: int, row_in: float, extra_in: float = 0.5) -> float:
    """Figure height in inches for ``n_rows`` rows of ``row_in`` plus ``extra_in`` (titles),
    shrunk so that the whole figure stays within :data:`MAX_HEIGHT_IN`."""
    return min(n_rows * row_in + extra_in, MAX_HEIGHT_IN)


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Save ``fig`` as PNG atomically with metadata stripped (stable bytes), then close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- box plots
def boxplots(
    per_case: pd.DataFrame,
    dataset: str,
    variants: Sequence[str],
    class_names: dict[int, str],
    unit: str,
    path: str | Path,
) -> Path:
    """One row of box plots per class, one panel per metric, one box per variant.

    ``per_case`` has columns ``variant, class`` and the metrics the registry shows
    (:func:`~jointseg.evaluation.metrics.shown_metrics`; each test case's value averaged
    over seeds); undefined (NaN) distances are left out of the distance boxes, and
    every box of those panels says how many under it.
    """
    box_metrics = shown_metrics()
    classes = sorted(per_case["class"].unique())
    fig, axes = plt.subplots(
        len(classes),
        len(box_metrics),
        squeeze=False,
        figsize=(3.2 * len(box_metrics), fit_height(len(classes), 2.8, 0.4)),
    )
    for r, k in enumerate(classes):
        sub = per_case[per_case["class"] == k]
        for c, metric in enumerate(box_metrics):
            ax = axes[r][c]
            data, labels = [], []
            for v in variants:
                vals = sub.loc[sub["variant"] == v, metric].to_numpy(dtype=float)
                finite = vals[~np.isnan(vals)]
                data.append(finite)
                n_nan = int(np.isnan(vals).sum())
                labels.append(f"{v}\n({n_nan} NaN)" if METRICS[metric].distance else v)
            ax.boxplot(
                [d if d.size else [np.nan] for d in data],
                showmeans=True,
                widths=0.6,
                medianprops={"color": "black"},
                meanprops={"marker": "^", "markerfacecolor": "white", "markeredgecolor": "black"},
            )
            ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, ha="right", fontsize=8)
            shown_unit = unit_of(metric, unit)
            ax.set_title(f"{METRICS[metric].label}" + (f" ({shown_unit})" if shown_unit else ""), fontsize=10)
            if c == 0:
                ax.set_ylabel(f"class {k}: {class_names.get(k, k)}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{dataset}: per-case test metrics (each case averaged over seeds)", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- image helpers
def find_image(folder: Path, case: str) -> Path | None:
    """``folder/<case>.<ext>`` for any known image or label suffix, or ``None``."""
    return find_case_file(folder, case, IMAGE_SUFFIXES + (".npy",))


def read_any(path: Path, canonical: bool = True) -> np.ndarray:
    """Read an image or label file as an array; NIfTI reoriented to canonical RAS when asked."""
    name = path.name.lower()
    if name.endswith((".nii.gz", ".nii")):
        img = nib.load(str(path))
        if canonical:
            img = nib.as_closest_canonical(img)
        data = np.asanyarray(img.dataobj)
        return data[..., 0] if data.ndim == 4 else data
    if name.endswith(".npy"):
        return np.load(path, allow_pickle=False)

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB") if im.mode not in ("L", "P", "I", "I;16", "1", "RGB") else im)


def structure_slice(ref: np.ndarray, axis: int) -> int:
    """Index along ``axis`` in the middle of the reference's foreground (volume middle if empty)."""
    fg = np.nonzero(np.moveaxis(ref, axis, 0).reshape(ref.shape[axis], -1).any(axis=1))[0]
    return int((fg[0] + fg[-1]) // 2) if fg.size else ref.shape[axis] // 2


def to_display(image: np.ndarray) -> np.ndarray:
    """Scale an image to [0, 1] for display (robust 1-99 percentile window)."""
    img = np.asarray(image, dtype=float)
    lo, hi = np.percentile(img, [1, 99])
    return np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def _overlay(ax, image: np.ndarray, labels: np.ndarray | None, contour: np.ndarray | None = None) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    if labels is not None:
        k = max(int(labels.max()), 1)
        cmap = mcolors.ListedColormap(LABEL_COLOURS[: k + 1] if k < len(LABEL_COLOURS) else None)
        shown = np.ma.masked_equal(labels.astype(int), 0)
        ax.imshow(shown, cmap=cmap, vmin=0, vmax=k, alpha=0.45, interpolation="nearest")
    if contour is not None and contour.any():
        cs = ax.contour(contour > 0, levels=[0.5], colors="yellow", linewidths=1.0)
        cs.set_path_effects([patheffects.withStroke(linewidth=2.2, foreground="black")])  # visible on any skin/MRI
    ax.set_xticks([])
    ax.set_yticks([])


# --------------------------------------------------------------------------- qualitative grid
def _qualitative_row(
    case: str, images_dir: Path, labels_dir: Path, predictions: dict[str, Path], slice_axis: int
) -> tuple | None:
    """``(title, case, display image, reference, {variant: prediction})`` of one case, or ``None``."""
    img_p, ref_p = find_image(images_dir, case), find_image(labels_dir, case)
    preds = {v: find_image(folder, case) for v, folder in predictions.items()}
    if img_p is None or ref_p is None or any(p is None for p in preds.values()):
        return None
    image, ref = read_any(img_p), read_any(ref_p)
    pred_arrays = {v: read_any(p) for v, p in preds.items()}
    title = case
    if ref.ndim == 3:
        idx = structure_slice(ref, slice_axis)

        def cut(a: np.ndarray) -> np.ndarray:
            # transposed with origin at the bottom: the usual radiological view of RAS slices
            return np.flipud(np.take(a, idx, axis=slice_axis).T)

        image, ref = cut(image), cut(ref)
        pred_arrays = {v: cut(a) for v, a in pred_arrays.items()}
        title = f"{case} (slice {idx})"
    step = max(1, math.ceil(max(ref.shape[:2]) / 512))  # full-size dermoscopy: thin out for display
    if step > 1:
        image, ref = image[::step, ::step], ref[::step, ::step]
        pred_arrays = {v: a[::step, ::step] for v, a in pred_arrays.items()}
    return title, case, to_display(image), ref, pred_arrays


def qualitative_grid(
    cases: Sequence[str],
    images_dir: Path,
    labels_dir: Path,
    predictions: dict[str, Path],
    dataset: str,
    slice_axis: int,
    path: str | Path,
    scores: dict[tuple[str, str], float] | None = None,
) -> Path | None:
    """Rows: cases; columns: image, reference, then each variant's prediction
    (filled overlay, reference contour in yellow). 3-D: the canonical slice
    through the middle of the reference structure along ``slice_axis``.

    ``predictions`` maps variant -> its prediction folder; ``scores`` optional
    ``(variant, case) -> Dice`` shown under the panels. Returns ``None`` if
    no case has all files.
    """
    rows = [r for case in cases if (r := _qualitative_row(case, images_dir, labels_dir, predictions, slice_axis))]
    if not rows:
        return None
    n_cols = 2 + len(predictions)
    fig, axes = plt.subplots(len(rows), n_cols, squeeze=False, figsize=(2.2 * n_cols, fit_height(len(rows), 2.3, 0.3)))
    for r, (title, case, image, ref, pred_arrays) in enumerate(rows):
        _overlay(axes[r][0], image, None)
        axes[r][0].set_ylabel(title, fontsize=8)
        _overlay(axes[r][1], image, ref)
        for c, (variant, pred) in enumerate(pred_arrays.items(), start=2):
            _overlay(axes[r][c], image, pred, contour=ref)
            if scores and (variant, case) in scores:
                axes[r][c].set_xlabel(f"Dice {scores[(variant, case)]:.3f}", fontsize=8)
        if r == 0:
            for c, name in enumerate(["image", "reference", *pred_arrays]):
                axes[r][c].set_title(name, fontsize=9)
    fig.suptitle(f"{dataset}: test cases (prediction filled, reference outlined in yellow)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
