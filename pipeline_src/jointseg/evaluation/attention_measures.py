"""How local one attention map is: the measures, the grid labels and the query sampling (numpy only).

A map is the attention of one query position over the ``(gh, gw)`` attention grid
(probabilities summing to 1). One grid step is ``stride`` input pixels, and an input
pixel is ``spacing`` mm (3-D slices, from the NIfTI header) or 1 px (2-D images), so a
step is ``stride * spacing`` in the data set's unit. Per map and query ``i``:

- mean attention distance ``sum_j A_ij * ||p_j - p_i||`` (mm or px);
- effective area ``exp(H(A_i.)) / L`` (``0 log 0 = 0``): ``1/L`` for a one-hot map, 1 for
  a uniform one;
- for a foreground query, the attention mass on its own object: the sum of ``A_ij``
  over the query's connected component (8-connected) of grid cells of its class.

Grid labels: a cell is foreground when at least half of its ``stride x stride``
input pixels are (pixels past the image's edge count as background), and takes the
most frequent foreground class among them (ties: the lower class index).
"""

from __future__ import annotations

import zlib
from typing import Sequence

import nibabel.orientations as no
import numpy as np
from scipy import ndimage
from scipy.special import xlogy

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def grid_steps(stride: int, spacing: Sequence[float] | None = None) -> tuple[float, float]:
    """One grid step along (rows, columns), in mm (``spacing`` of a pixel) or px (``None``)."""
    sy, sx = (1.0, 1.0) if spacing is None else (float(spacing[0]), float(spacing[1]))
    return stride * sy, stride * sx


def distances_from(query: tuple[int, int], grid: tuple[int, int], steps: tuple[float, float]) -> np.ndarray:
    """``(gh, gw)`` distances of every grid cell's centre from the query's centre."""
    rows = (np.arange(grid[0]) - query[0]) * steps[0]
    cols = (np.arange(grid[1]) - query[1]) * steps[1]
    return np.hypot(rows[:, None], cols[None, :])


def map_measures(
    prob: np.ndarray, query: tuple[int, int], steps: tuple[float, float], own_object: np.ndarray | None = None
) -> dict[str, float]:
    """``distance``, ``area`` and ``object_mass`` (NaN without ``own_object``) of one map.

    ``prob`` is ``(gh, gw)``, non-negative, summing to 1 (renormalised against float error).
    """
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 2 or (p < 0).any() or not np.isfinite(p).all() or p.sum() <= 0:
        raise ValueError(f"an attention map must be a finite, non-negative (H, W) array, got shape {p.shape}")
    p = p / p.sum()
    entropy = -float(xlogy(p, p).sum())
    return {
        "distance": float((p * distances_from(query, p.shape, steps)).sum()),
        "area": float(np.exp(entropy) / p.size),
        "object_mass": float(p[own_object].sum()) if own_object is not None else float("nan"),
    }


def grid_labels(label: np.ndarray, grid: tuple[int, int], stride: int) -> np.ndarray:
    """``(gh, gw)`` class per attention-grid cell of a ``(H, W)`` class-index label (module docstring)."""
    label = np.asarray(label, dtype=np.int64)
    gh, gw = grid
    padded = np.zeros((gh * stride, gw * stride), dtype=np.int64)
    h, w = min(label.shape[0], gh * stride), min(label.shape[1], gw * stride)
    padded[:h, :w] = label[:h, :w]
    cells = padded.reshape(gh, stride, gw, stride).transpose(0, 2, 1, 3).reshape(gh, gw, -1)
    n_classes = int(padded.max()) + 1
    if n_classes == 1:
        return np.zeros(grid, dtype=np.int64)
    counts = np.stack([(cells == k).sum(-1) for k in range(1, n_classes)], axis=-1)  # (gh, gw, K-1)
    foreground = counts.sum(-1) * 2 >= stride * stride
    return np.where(foreground, 1 + counts.argmax(-1), 0)


def own_object(cells: np.ndarray, query: tuple[int, int]) -> np.ndarray:
    """Mask of the 8-connected component of cells of the query's class that holds the query."""
    klass = cells[query]
    if klass == 0:
        raise ValueError(f"query {query} is a background cell; only foreground queries have an object")
    components, _ = ndimage.label(cells == klass, structure=EIGHT_CONNECTED)
    return components == components[query]


def query_rng(seed: int, case: str, image: int) -> np.random.Generator:
    """The generator of one image's queries: fixed by the seed, the case id and the slice index."""
    return np.random.default_rng([int(seed), zlib.crc32(case.encode()), int(image)])


def sample_queries(cells: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[str, int, int]]:
    """Up to ``n`` foreground and ``n`` background cells (without replacement): ``(kind, h, w)``."""
    queries = []
    for kind, where in (("foreground", cells > 0), ("background", cells == 0)):
        flat = np.flatnonzero(where)
        chosen = np.sort(rng.choice(flat, size=min(n, flat.size), replace=False)) if flat.size else []
        queries += [(kind, *np.unravel_index(int(i), cells.shape)) for i in chosen]
    return [(k, int(h), int(w)) for k, h, w in queries]


def inplane_spacing(case: dict, slice_axis: int) -> tuple[float, float]:
    """Pixel spacing (mm) of a 3-D case's prepared slices, from its manifest record.

    The volume was reoriented to canonical RAS (axis permutation and flips:
    ``nibabel``'s ``io_orientation`` of the stored affine) and sliced along
    ``slice_axis``; the two remaining canonical axes, in order, are the slice's rows and columns.
    """
    stored = no.io_orientation(np.asarray(case["affine"], dtype=float))
    canonical = [0.0, 0.0, 0.0]
    for axis, (ras_axis, _flip) in enumerate(stored[:3]):
        canonical[int(ras_axis)] = float(case["spacing"][axis])
    rows, cols = (s for a, s in enumerate(canonical) if a != slice_axis)
    return rows, cols
