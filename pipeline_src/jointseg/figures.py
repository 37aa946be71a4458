"""Figures of the summary: box plots, learning curves, qualitative grids, attention maps.

Every figure is drawn with matplotlib's Agg backend and saved as PNG with the
metadata stripped (no "Software" / date chunk), atomically, so two runs on the
same inputs write byte-identical files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # headless, deterministic rasteriser; before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colors as mcolors  # noqa: E402

from .io_utils import atomic_path  # noqa: E402

BOX_METRICS: tuple[str, ...] = ("dice", "iou", "hd95", "assd")
METRIC_LABELS = {"dice": "Dice", "iou": "IoU", "hd95": "HD95", "assd": "ASSD"}
# class index -> overlay colour (index 0 transparent)
LABEL_COLOURS = ["#00000000", "#32d74b", "#0a84ff", "#ff375f", "#ffd60a", "#bf5af2", "#ff9f0a"]
IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 110) -> Path:
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

    ``per_case`` has columns ``variant, class, dice, iou, hd95, assd`` (per-case
    values pooled over seeds); NaN distances are left out and their count is
    shown under the box.
    """
    classes = sorted(per_case["class"].unique())
    fig, axes = plt.subplots(len(classes), len(BOX_METRICS), squeeze=False,
                             figsize=(3.2 * len(BOX_METRICS), 2.8 * len(classes) + 0.4))
    for r, k in enumerate(classes):
        sub = per_case[per_case["class"] == k]
        for c, metric in enumerate(BOX_METRICS):
            ax = axes[r][c]
            data, labels = [], []
            for v in variants:
                vals = sub.loc[sub["variant"] == v, metric].to_numpy(dtype=float)
                finite = vals[~np.isnan(vals)]
                data.append(finite)
                n_nan = int(np.isnan(vals).sum())
                labels.append(v if n_nan == 0 else f"{v}\n({n_nan} NaN)")
            ax.boxplot([d if d.size else [np.nan] for d in data], showmeans=True, widths=0.6,
                       medianprops={"color": "black"},
                       meanprops={"marker": "^", "markerfacecolor": "white", "markeredgecolor": "black"})
            ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, ha="right", fontsize=8)
            unit_txt = f" ({unit})" if metric in ("hd95", "assd") else ""
            ax.set_title(f"{METRIC_LABELS[metric]}{unit_txt}", fontsize=10)
            if c == 0:
                ax.set_ylabel(f"class {k}: {class_names.get(k, k)}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{dataset}: per-case metrics (test set, mean over seeds per case)", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- learning curves
def learning_curves(histories: dict[tuple[str, int], pd.DataFrame], dataset: str, path: str | Path) -> Path:
    """Training loss and validation Dice against step, one colour per variant, one line per seed."""
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 3.6))
    variants = list(dict.fromkeys(v for v, _ in histories))
    cmap = plt.get_cmap("tab10")
    for (variant, seed), hist in histories.items():
        colour = cmap(variants.index(variant) % 10)
        label = variant if seed == min(s for v, s in histories if v == variant) else None
        if "loss" in hist:
            h = hist[["step", "loss"]].dropna()
            ax_loss.plot(h["step"], h["loss"], color=colour, lw=1, alpha=0.8, label=label)
        if "val_dice" in hist:
            h = hist[["step", "val_dice"]].dropna()
            ax_dice.plot(h["step"], h["val_dice"], color=colour, lw=1.2, marker="o", ms=3, label=label)
    ax_loss.set(xlabel="iteration", ylabel="training loss", title="loss")
    ax_dice.set(xlabel="iteration", ylabel="validation Dice", title="validation Dice")
    for ax in (ax_loss, ax_dice):
        ax.grid(alpha=0.3)
    ax_dice.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{dataset}: learning curves", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- image helpers
def find_image(folder: Path, case: str) -> Path | None:
    """``folder/<case>.<ext>`` for any known image extension, or ``None``."""
    for ext in IMAGE_EXTENSIONS:
        candidate = folder / f"{case}{ext}"
        if candidate.is_file():
            return candidate
    return None


def read_any(path: Path, canonical: bool = True) -> np.ndarray:
    """Read an image or label file as an array; NIfTI reoriented to canonical RAS when asked."""
    name = path.name.lower()
    if name.endswith((".nii.gz", ".nii")):
        import nibabel as nib

        img = nib.load(str(path))
        if canonical:
            img = nib.as_closest_canonical(img)
        data = np.asanyarray(img.dataobj)
        return data[..., 0] if data.ndim == 4 else data
    if name.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    from PIL import Image

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
        from matplotlib import patheffects

        cs = ax.contour(contour > 0, levels=[0.5], colors="yellow", linewidths=1.0)
        cs.set_path_effects([patheffects.withStroke(linewidth=2.2, foreground="black")])  # visible on any skin/MRI
    ax.set_xticks([])
    ax.set_yticks([])


# --------------------------------------------------------------------------- qualitative grid
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
    (filled overlay, reference contour in white). 3-D: the canonical slice
    through the middle of the reference structure along ``slice_axis``.

    ``predictions`` maps variant -> its prediction folder; ``scores`` optional
    ``(variant, case) -> Dice`` shown in the panel titles. Returns ``None`` if
    no case has all files.
    """
    rows = []
    for case in cases:
        img_p, ref_p = find_image(images_dir, case), find_image(labels_dir, case)
        preds = {v: find_image(folder, case) for v, folder in predictions.items()}
        if img_p is None or ref_p is None or any(p is None for p in preds.values()):
            continue
        image, ref = read_any(img_p), read_any(ref_p)
        pred_arrays = {v: read_any(p) for v, p in preds.items()}
        if ref.ndim == 3:
            idx = structure_slice(ref, slice_axis)

            def cut(a: np.ndarray) -> np.ndarray:
                # transposed with origin at the bottom: the usual radiological view of RAS slices
                return np.flipud(np.take(a, idx, axis=slice_axis).T)

            image, ref = cut(image), cut(ref)
            pred_arrays = {v: cut(a) for v, a in pred_arrays.items()}
            title = f"{case} (slice {idx})"
        else:
            title = case
        step = max(1, math.ceil(max(ref.shape[:2]) / 512))  # full-size dermoscopy: thin out for display
        if step > 1:
            image, ref = image[::step, ::step], ref[::step, ::step]
            pred_arrays = {v: a[::step, ::step] for v, a in pred_arrays.items()}
        rows.append((title, case, to_display(image), ref, pred_arrays))
    if not rows:
        return None
    n_cols = 2 + len(predictions)
    fig, axes = plt.subplots(len(rows), n_cols, squeeze=False, figsize=(2.2 * n_cols, 2.3 * len(rows) + 0.3))
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


# --------------------------------------------------------------------------- attention maps
def query_points(grid: tuple[int, int], foreground: np.ndarray | None, n: int) -> list[tuple[int, int]]:
    """``n`` query points in attention-grid coordinates: the predicted structure's
    centre first (if any), then fixed background positions."""
    h, w = grid
    points: list[tuple[int, int]] = []
    if foreground is not None and foreground.any():
        ys, xs = np.nonzero(foreground)
        sy, sx = h / foreground.shape[0], w / foreground.shape[1]
        points.append((min(int(ys.mean() * sy), h - 1), min(int(xs.mean() * sx), w - 1)))
    for fy, fx in ((0.15, 0.15), (0.85, 0.85), (0.15, 0.85), (0.85, 0.15), (0.5, 0.5), (0.5, 0.15)):
        p = (min(int(fy * h), h - 1), min(int(fx * w), w - 1))
        if p not in points:
            points.append(p)
    return points[:n]


def _fit(x: np.ndarray, size: tuple[int, int], centre: tuple[float, float] | None = None) -> np.ndarray:
    """Crop (around ``centre``) or zero-pad the last two axes of ``x`` to exactly ``size``."""
    out = x
    for axis, target in ((-2, size[0]), (-1, size[1])):
        n = out.shape[axis]
        if n > target:
            c = n / 2 if centre is None else centre[axis + 2]
            start = int(min(max(round(c - target / 2), 0), n - target))
            out = np.take(out, range(start, start + target), axis=axis)
        elif n < target:
            pad = [(0, 0)] * out.ndim
            pad[axis] = ((target - n) // 2, target - n - (target - n) // 2)
            out = np.pad(out, pad)
    return out


def attention_inputs(model: Any, array: np.ndarray, size: tuple[int, int]):
    """Pick one 2-D model input from a preprocessed array (2-D ``(C,H,W)``, 3-D ``(S,1,H,W)``).

    3-D: the slice where the model predicts most foreground, cropped around it.
    Returns ``(x (1,C,h,w) tensor, predicted foreground mask (h, w))``.
    """
    import torch

    stack = array[None] if array.ndim == 3 else array
    if stack.shape[-2:] != tuple(size):  # 3-D slices are padded, never resized: take the centre
        stack = np.stack([_fit(s, size) for s in stack])
    with torch.no_grad():
        x_all = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
        fg = torch.cat([model(x_all[i:i + 8]).argmax(1) for i in range(0, len(x_all), 8)]).numpy() > 0
    best = int(np.argmax(fg.reshape(len(fg), -1).sum(1)))
    return x_all[best:best + 1], fg[best]


def attention_figure(
    entries: list[dict],
    dataset: str,
    n_queries: int,
    path: str | Path,
) -> Path | None:
    """Attention maps of each variant for a few query points on one test image.

    ``entries``: ``[{"variant", "model", "x" (1,C,h,w tensor), "foreground" (h,w bool)}]``
    with models in eval mode. Rows: variant (and branch, e.g. point-wise
    *collect* / *distribute*); columns: query points (white cross). Each panel
    states the map's effective area exp(entropy)/L: small for a localised map,
    near 100 % for a global one.
    """
    import torch.nn.functional as F

    panels = []  # (row label, image, [(query, upsampled map, eff. area)])
    for e in entries:
        model, x = e["model"], e["x"]
        grid = tuple(model.attention_grid)
        queries = query_points(grid, e["foreground"], n_queries)
        maps = [model.attention_map(x, q) for q in queries]  # each (1, B, h, w)
        branches = list(getattr(model.attention, "branches", []))
        n_b = maps[0].shape[1]
        # grey image so that the colour of the map stands out
        image = to_display(x[0].numpy().mean(axis=0))
        for b in range(n_b):
            label = e["variant"] if n_b == 1 else f"{e['variant']}: {branches[b] if len(branches) == n_b else b}"
            row = []
            for q, m in zip(queries, maps):
                prob = m[0, b].float()
                eff = effective_area(prob.numpy())
                up = F.interpolate(prob[None, None], size=image.shape[:2], mode="bilinear",
                                   align_corners=False)[0, 0].numpy()
                row.append((q, up, eff))
            panels.append((label, image, row, grid))
    if not panels:
        return None
    n_cols = max(len(r) for _, _, r, _ in panels)
    fig, axes = plt.subplots(len(panels), n_cols, squeeze=False, figsize=(2.4 * n_cols, 2.4 * len(panels) + 0.4))
    for r, (label, image, row, grid) in enumerate(panels):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row):
                ax.axis("off")
                continue
            (qh, qw), up, eff = row[c]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
            rel = up / max(float(up.max()), 1e-12)
            rgba = plt.get_cmap("inferno")(rel)
            rgba[..., 3] = 0.75 * rel  # opacity follows the weight: unattended areas show the image
            ax.imshow(rgba, interpolation="nearest")
            sy, sx = image.shape[0] / grid[0], image.shape[1] / grid[1]
            ax.plot([(qw + 0.5) * sx], [(qh + 0.5) * sy], marker="+", color="cyan", ms=12, mew=2)
            ax.set_xlabel(f"query ({qh},{qw}); eff. area {100 * eff:.0f}%", fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(f"{dataset}: attention of the query (+) over the {panels[0][3][0]}x{panels[0][3][1]} grid "
                 "(each map scaled to its max)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def effective_area(prob: np.ndarray) -> float:
    """exp(entropy) / number of positions: 1/L for a one-hot map, 1 for a uniform one."""
    p = np.clip(np.asarray(prob, dtype=float).ravel(), 1e-12, None)
    p = p / p.sum()
    return float(math.exp(-(p * np.log(p)).sum()) / p.size)
