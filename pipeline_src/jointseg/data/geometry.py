"""Mapping a prediction back onto the source grid, and writing it.

:class:`Inverse` is what preprocessing remembers about one raw file;
:func:`restore` undoes resizing (2-D) or padding, slicing and reorientation
(3-D, exactly); :func:`save_prediction` writes class indices as a PNG (2-D) or
a NIfTI with the source affine and header (3-D).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import nibabel.orientations as no
import numpy as np
from PIL import Image
from skimage.transform import resize

from ..io_utils import atomic_path
from .images2d import resize_label


@dataclass
class Inverse:
    """What :func:`restore` needs to put a prediction back onto the source grid."""

    ndim: int
    shape: tuple[int, ...]  # original grid: 2-D (h, w); 3-D the stored volume shape
    source: str
    affine: np.ndarray | None = None  # 3-D: the source affine (kept exactly)
    header: Any = None  # 3-D: copy of the source NIfTI header
    slice_axis: int | None = None  # 3-D: axis of the canonical volume sliced along
    canonical_shape: tuple[int, ...] | None = None
    pad: tuple[tuple[int, int], tuple[int, int]] | None = None  # 3-D: (before, after) of H', W'
    to_original: np.ndarray | None = field(default=None, repr=False)  # canonical -> stored orientation


def restore(prediction: np.ndarray, inverse: Inverse) -> np.ndarray:
    """Map a prediction in the prepared geometry back onto the original grid.

    * integer labels: 2-D ``(H, W)`` -> ``(h, w)`` (nearest neighbour);
      3-D ``(S, H', W')`` -> the stored volume shape (exact: crop, unslice, reorient).
    * float probabilities with a leading class axis: 2-D ``(K, H, W)`` ->
      ``(K, h, w)`` resized with order 1 (the caller takes the argmax);
      3-D ``(K, S, H', W')`` -> ``(K, *shape)`` (exact, no interpolation).
    """
    pred = np.asarray(prediction)
    is_prob = np.issubdtype(pred.dtype, np.floating)
    if inverse.ndim == 2:
        if is_prob:
            if pred.ndim != 3:
                raise ValueError(f"2-D probabilities must be (K, H, W), got {pred.shape}")

            out = resize(
                pred,
                (pred.shape[0],) + tuple(inverse.shape),
                order=1,
                mode="edge",
                anti_aliasing=False,
                preserve_range=True,
            )
            return out.astype(np.float32)
        if pred.ndim != 2:
            raise ValueError(f"2-D labels must be (H, W), got {pred.shape}")
        return resize_label(pred, inverse.shape)
    lead = pred.shape[:1] if is_prob else ()
    core = pred.shape[len(lead) :]
    axis = inverse.slice_axis
    in_plane = [s for a, s in enumerate(inverse.canonical_shape) if a != axis]
    (h0, _), (w0, _) = inverse.pad
    expect_s = inverse.canonical_shape[axis]
    if len(core) != 3 or core[0] != expect_s or core[1] < in_plane[0] + h0 or core[2] < in_plane[1] + w0:
        raise ValueError(
            f"3-D prediction of shape {pred.shape} does not match the prepared geometry "
            f"({expect_s} slices of at least {in_plane[0] + h0}x{in_plane[1] + w0})"
        )

    cropped = pred[..., :, h0 : h0 + in_plane[0], w0 : w0 + in_plane[1]]
    canon = np.moveaxis(cropped, len(lead), len(lead) + axis)
    if lead:
        out = np.stack([no.apply_orientation(c, inverse.to_original) for c in canon])
    else:
        out = no.apply_orientation(canon, inverse.to_original)
    out = np.ascontiguousarray(out)
    assert out.shape[len(lead) :] == tuple(inverse.shape), (out.shape, inverse.shape)
    return out


def save_prediction(array: np.ndarray, inverse: Inverse, out_path: str | os.PathLike) -> Path:
    """Write a class-index map on the original grid (from :func:`restore`), atomically.

    2-D: a grey PNG of class indices. 3-D: NIfTI (``.nii`` or ``.nii.gz``)
    with the source affine, header and orientation, data type uint8.
    """
    out_path = Path(out_path)
    labels = np.asarray(array)
    if labels.shape != tuple(inverse.shape):
        raise ValueError(f"prediction shape {labels.shape} != original grid {tuple(inverse.shape)}")
    labels = labels.astype(np.uint8)
    if inverse.ndim == 2:
        with atomic_path(out_path) as tmp:
            Image.fromarray(labels).save(tmp, format="PNG")
        return out_path

    header = inverse.header.copy()
    cls = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    img = cls(labels, inverse.affine, header=header)
    img.set_data_dtype(np.uint8)
    img.header.set_slope_inter(1.0, 0.0)
    data = img.to_bytes()
    if out_path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(data)
    return out_path
