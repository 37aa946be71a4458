"""Surface distances as MONAI defines them, computed with scipy.ndimage.

    surface  = mask XOR binary_erosion(mask)      (outside the grid counts as background)
    d(a->b)  = Euclidean distance transform of "not surface b", read at surface a

scipy.ndimage is the library MONAI itself calls on the CPU; importing MONAI costs
seconds per evaluate job, and the tests check the metrics built on these distances
against MONAI's metric classes. Imported by :mod:`.metrics` only when a distance is
computed (scipy.ndimage costs 0.2 s; the reporting and tracking jobs read the metric
registry, never a mask).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt


def _surfaces(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surface voxels of both masks, on their joint bounding box grown by one background voxel.

    The margin makes an object touching the grid's edge have its surface there
    (as MONAI's crop with ``margin=1``); cropping changes no distance, since
    every surface voxel lies inside the box.
    """
    union = np.argwhere(pred | ref)
    box = tuple(slice(lo, hi + 1) for lo, hi in zip(union.min(0), union.max(0)))
    pred, ref = np.pad(pred[box], 1), np.pad(ref[box], 1)
    return pred ^ binary_erosion(pred), ref ^ binary_erosion(ref)


def _directed(surface_a: np.ndarray, surface_b: np.ndarray, spacing: Sequence[float] | None) -> np.ndarray:
    """Distances from every surface voxel of ``a`` to the nearest surface voxel of ``b``."""
    return distance_transform_edt(~surface_b, sampling=spacing)[surface_a]


def directed_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(forward, backward)``: every surface voxel's distance to the other mask's surface, both ways.

    Both masks must be non-empty (boolean arrays); ``spacing`` in the unit of the distances.
    """
    sampling = None if spacing is None else [float(s) for s in spacing]
    surface_pred, surface_ref = _surfaces(pred, ref)
    return _directed(surface_pred, surface_ref, sampling), _directed(surface_ref, surface_pred, sampling)
