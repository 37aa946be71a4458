"""3-D volumes: NIfTI reading, canonical orientation, nnU-Net-style z-score, slicing.

A volume is reoriented to canonical RAS (``nibabel.as_closest_canonical``:
axis permutation and flips only, so no resampling), intensity z-scored nnU-Net
MRI style per channel (mean and std over that channel's nonzero voxels,
normalised inside that mask, 0 outside), sliced along ``spec["slice_axis"]``
and each slice zero-padded centrally (never resized) to at least
``spec["size"]``. Multi-modal images come either as one 4-D ``(X, Y, Z, C)``
NIfTI (MSD, e.g. Task01 BrainTumour) or one 3-D file per channel (nnU-Net).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import nibabel.orientations as no
import numpy as np

from ..io_utils import UserError
from .geometry import Inverse


def load_nifti(path: str | os.PathLike):
    """Open a NIfTI image and read its data once, turning any failure into a :class:`UserError`."""
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except FileNotFoundError:
        raise UserError(f"{path}: NIfTI file not found") from None
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError) as exc:
        raise UserError(
            f"{path}: cannot read NIfTI ({exc}); the file is truncated or not NIfTI - re-download or remove it"
        ) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim not in (3, 4):
        raise UserError(
            f"{path}: NIfTI has shape {data.shape}; expected a 3-D volume or a 4-D (X, Y, Z, channel) multi-modal image"
        )
    return img, data


def check_same_grid(img, shape: tuple, ref_img, ref_shape: tuple, what: str, ref: str, fix: str) -> None:
    """Reject ``what`` unless its shape and affine (to 1e-3) are those of ``ref``: one voxel grid."""
    if tuple(shape) != tuple(ref_shape):
        raise UserError(f"{what} has shape {tuple(shape)} but {ref} has {tuple(ref_shape)}; {fix}")
    if not np.allclose(img.affine, ref_img.affine, rtol=0, atol=1e-3):
        raise UserError(f"{what} has a different affine than {ref}; {fix}")


def load_channels(paths: list[Path], case: str):
    """One 3-D file per channel -> ``(first image, data (X, Y, Z, C))``; all must share shape and affine."""
    first, data0 = load_nifti(paths[0])
    planes = [data0]
    for path in paths:
        img, data = (first, data0) if path is paths[0] else load_nifti(path)
        if data.ndim != 3:
            raise UserError(f"{path}: a channel file of case '{case}' must hold one 3-D volume, not {data.shape}")
        if path is paths[0]:
            continue
        what = f"case '{case}': channel {Path(path).name}"
        fix = "all channels of a case must share one grid (fix the headers or resample)"
        check_same_grid(img, data.shape, first, data0.shape, what, Path(paths[0]).name, fix)
        planes.append(data)
    return first, np.stack(planes, axis=-1)


def canonical(img, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient ``data`` (stored orientation) to canonical RAS; also return the inverse transform.

    Same axis permutation/flips as ``nibabel.as_closest_canonical``; the
    transform back is ``nib.orientations`` ``ornt_transform(RAS, stored)``.
    """
    stored = no.io_orientation(img.affine)
    ras = no.axcodes2ornt("RAS")
    out = no.apply_orientation(data, stored)
    return np.ascontiguousarray(out), no.ornt_transform(ras, stored)


def check_finite(data: np.ndarray, path: str | os.PathLike) -> None:
    """Reject NaN or infinite voxels."""
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        n = int((~np.isfinite(data)).sum())
        raise UserError(f"{path}: {n} NaN or infinite voxel(s); fix or remove the volume")


def zscore_nonzero(data: np.ndarray, path: str | os.PathLike = "") -> np.ndarray:
    """nnU-Net MRI normalisation: z-score over the nonzero voxels, zero elsewhere.

    Mean and std come from the voxels != 0 (the head / field of view);
    those voxels are normalised, all others set to 0.
    """
    data = np.asarray(data, np.float64)
    mask = data != 0
    if mask.sum() < 2:
        raise UserError(f"{path}: volume is empty (fewer than 2 nonzero voxels); remove it")
    values = data[mask]
    mean, std = values.mean(), values.std()
    out = np.zeros(data.shape, np.float32)
    out[mask] = ((values - mean) / max(std, 1e-8)).astype(np.float32)
    return out


def pad_amounts(shape: tuple[int, int], size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Central zero padding that brings ``shape`` up to at least ``size``."""
    pads = []
    for n, m in zip(shape, size):
        total = max(m - n, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)  # type: ignore[return-value]


def to_slices(volume: np.ndarray, axis: int, pad: tuple) -> np.ndarray:
    """Canonical ``(X, Y, Z)`` -> ``(S, H', W')`` slices along ``axis``, zero-padded by ``pad``."""
    slices = np.moveaxis(volume, axis, 0)
    return np.ascontiguousarray(np.pad(slices, ((0, 0),) + tuple(pad)))


def volume_from(
    img, data: np.ndarray, path: str | os.PathLike, spec: dict, channel_paths: list[Path] | None = None
) -> tuple[np.ndarray, Inverse]:
    """A loaded NIfTI (``img``; ``data`` 3-D or ``(X, Y, Z, C)``) -> float32 ``(S, C, H', W')`` and its :class:`Inverse`.

    Every channel is z-scored on its own nonzero voxels; ``channel_paths``
    (one file per channel) only makes error messages name the right file.
    """
    channels = 1 if data.ndim == 3 else data.shape[3]
    expect = int(spec.get("in_channels", 1))
    if channels != expect:
        names = spec.get("channels") or []
        raise UserError(
            f"{path}: image has {channels} channel(s); this data set / checkpoint expects {expect}"
            + (f" ({', '.join(map(str, names))})" if names else "")
            + " - give the matching modalities or fix the data set's description"
        )
    check_finite(data, path)
    canon, back = canonical(img, data)
    canon = canon if canon.ndim == 4 else canon[..., None]
    names = channel_paths or [path] * channels
    axis = int(spec["slice_axis"])
    in_plane = tuple(s for a, s in enumerate(canon.shape[:3]) if a != axis)
    pad = pad_amounts(in_plane, tuple(spec["size"]))
    slices = np.stack([to_slices(zscore_nonzero(canon[..., c], names[c]), axis, pad) for c in range(channels)], axis=1)
    inverse = Inverse(
        ndim=3,
        shape=tuple(int(s) for s in data.shape[:3]),
        source=str(path),
        affine=np.array(img.affine, dtype=np.float64),
        header=img.header.copy(),
        slice_axis=axis,
        canonical_shape=tuple(int(s) for s in canon.shape[:3]),
        pad=pad,
        to_original=back,
    )
    return slices.astype(np.float32), inverse
