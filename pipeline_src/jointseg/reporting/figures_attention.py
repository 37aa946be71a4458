"""Attention-map figure: where a query position looks, for each variant, on one test image.

Maps come from ``model.attention_map(x, query)`` (probabilities over the
attention grid, one map per branch, e.g. point-wise *collect* / *distribute*).
Each panel states the map's effective area exp(entropy)/L: small for a
localised map, near 100 % for a global one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .figures import fit_height, plt, save_figure, to_display


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
    stack = array[None] if array.ndim == 3 else array
    if stack.shape[-2:] != tuple(size):  # 3-D slices are padded, never resized: take the centre
        stack = np.stack([_fit(s, size) for s in stack])
    with torch.no_grad():
        x_all = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
        fg = torch.cat([model(x_all[i : i + 8]).argmax(1) for i in range(0, len(x_all), 8)]).numpy() > 0
    best = int(np.argmax(fg.reshape(len(fg), -1).sum(1)))
    return x_all[best : best + 1], fg[best]


def _panels(entry: dict, n_queries: int) -> list[tuple]:
    """Rows of one variant: ``(label, grey image, [(query, upsampled map, eff. area)], grid)`` per branch."""
    model, x = entry["model"], entry["x"]
    grid = tuple(model.attention_grid)
    queries = query_points(grid, entry["foreground"], n_queries)
    maps = [model.attention_map(x, q) for q in queries]  # each (1, B, h, w)
    branches = list(getattr(model.attention, "branches", []))
    n_b = maps[0].shape[1]
    image = to_display(x[0].numpy().mean(axis=0))  # grey, so that the colour of the map stands out
    rows = []
    for b in range(n_b):
        label = entry["variant"] if n_b == 1 else f"{entry['variant']}: {branches[b] if len(branches) == n_b else b}"
        row = []
        for q, m in zip(queries, maps):
            prob = m[0, b].float()
            up = F.interpolate(prob[None, None], size=image.shape[:2], mode="bilinear", align_corners=False)[
                0, 0
            ].numpy()
            row.append((q, up, effective_area(prob.numpy())))
        rows.append((label, image, row, grid))
    return rows


def _draw_panel(
    ax: Any, image: np.ndarray, query: tuple[int, int], up: np.ndarray, eff: float, grid: tuple[int, int]
) -> None:
    qh, qw = query
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    rel = up / max(float(up.max()), 1e-12)
    rgba = plt.get_cmap("inferno")(rel)
    rgba[..., 3] = 0.75 * rel  # opacity follows the weight: unattended areas show the image
    ax.imshow(rgba, interpolation="nearest")
    sy, sx = image.shape[0] / grid[0], image.shape[1] / grid[1]
    ax.plot([(qw + 0.5) * sx], [(qh + 0.5) * sy], marker="+", color="cyan", ms=12, mew=2)
    ax.set_xlabel(f"query ({qh},{qw}); eff. area {100 * eff:.0f}%", fontsize=7)


def attention_figure(entries: list[dict], dataset: str, n_queries: int, path: str | Path) -> Path | None:
    """Attention maps of each variant for a few query points on one test image.

    ``entries``: ``[{"variant", "model", "x" (1,C,h,w tensor), "foreground" (h,w bool)}]``
    with models in eval mode. Rows: variant (and branch); columns: query points
    (cyan cross). ``None`` when there is no entry.
    """
    panels = [row for e in entries for row in _panels(e, n_queries)]
    if not panels:
        return None
    n_cols = max(len(r) for _, _, r, _ in panels)
    fig, axes = plt.subplots(
        len(panels), n_cols, squeeze=False, figsize=(2.4 * n_cols, fit_height(len(panels), 2.4, 0.6))
    )
    for r, (label, image, row, grid) in enumerate(panels):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row):
                ax.axis("off")
                continue
            _draw_panel(ax, image, *row[c], grid)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(
        f"{dataset}: attention of the query (+) over the {panels[0][3][0]}x{panels[0][3][1]} grid "
        "(each map scaled to its max)",
        fontsize=9,
    )
    fig.tight_layout()
    return save_figure(fig, path)


def effective_area(prob: np.ndarray) -> float:
    """exp(entropy) / number of positions: 1/L for a one-hot map, 1 for a uniform one."""
    p = np.clip(np.asarray(prob, dtype=float).ravel(), 1e-12, None)
    p = p / p.sum()
    return float(math.exp(-(p * np.log(p)).sum()) / p.size)
