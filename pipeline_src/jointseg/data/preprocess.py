"""Per-file preprocessing shared by ``prepare`` (training data) and ``predict`` (inference).

The ``spec`` is the manifest's ``"preprocess"`` dict (also stored in every
checkpoint); with it a raw file is turned into exactly the arrays the model was
trained on, and a prediction is mapped back onto the file's original grid.

2-D (``spec["ndim"] == 2``, ISIC-like RGB images)
    RGB uint8 -> float in [0, 1] -> resized to ``spec["size"]`` with
    scikit-image (order 1, anti-aliased) -> per-channel z-score with the
    training split's ``mean``/``std`` -> float32 ``(C, H, W)``. Masks: order 0.

3-D (``spec["ndim"] == 3``, NIfTI volumes)
    Reoriented to canonical RAS (``nibabel.as_closest_canonical``: axis
    permutation and flips only, so no resampling), intensity z-scored nnU-Net
    MRI style: mean and std over the nonzero voxels, normalised inside that
    mask and 0 outside (zero background stays zero). Sliced along
    ``spec["slice_axis"]`` of the canonical volume, each slice zero-padded
    centrally (never resized) to at least ``spec["size"]`` -> float32
    ``(S, 1, H', W')``. Undoing the padding, the slicing and the reorientation
    is exact.

:func:`restore` maps a prediction in the prepared geometry back to the original
grid; :func:`save_prediction` writes it (PNG for 2-D, NIfTI with the source
affine and header for 3-D).
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io_utils import UserError, atomic_path

SPEC_VERSION = 1


@dataclass
class Inverse:
    """What :func:`restore` needs to put a prediction back onto the source grid."""

    ndim: int
    shape: tuple[int, ...]              # original grid: 2-D (h, w); 3-D the stored volume shape
    source: str
    affine: np.ndarray | None = None    # 3-D: the source affine (kept exactly)
    header: Any = None                  # 3-D: copy of the source NIfTI header
    slice_axis: int | None = None       # 3-D: axis of the canonical volume sliced along
    canonical_shape: tuple[int, ...] | None = None
    pad: tuple[tuple[int, int], tuple[int, int]] | None = None  # 3-D: (before, after) of H', W'
    to_original: np.ndarray | None = field(default=None, repr=False)  # canonical -> stored orientation


# --------------------------------------------------------------------------- 2-D


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An RGB image as uint8 ``(H, W, 3)``; clear errors for unreadable files or other channel counts."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except FileNotFoundError:
        raise UserError(f"{path}: image file not found") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: cannot read image ({exc}); the file is truncated or not an image - "
                        "re-download or remove it") from None
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if channels != 3 or mode not in ("RGB",):
        raise UserError(f"{path}: image has {channels} channel(s) (mode {mode}); expected RGB with 3 "
                        "channels - convert it to RGB or remove it")
    return arr


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A single-channel mask as an integer array ``(H, W)``."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("L")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise UserError(f"{path}: mask file not found") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: cannot read mask ({exc}); the file is truncated or not an image") from None
    if arr.ndim != 2:
        raise UserError(f"{path}: mask has {arr.shape[2]} channels; expected a single-channel (grey) PNG")
    return arr.astype(np.int64) if arr.dtype == bool else arr


def map_labels(raw: np.ndarray, label_values: dict, path: str | os.PathLike) -> np.ndarray:
    """Map raw mask values to class indices (``label_values``: ``{"raw": class}``); reject others."""
    values = np.unique(raw)
    allowed = {int(k): int(v) for k, v in label_values.items()}
    bad = [int(v) for v in values if int(v) not in allowed or v != int(v)]
    if bad:
        raise UserError(f"{path}: label values {bad[:10]} are outside the declared label map "
                        f"{sorted(allowed)}; fix the file or the data set's labels")
    lut = np.zeros(max(allowed) + 1, np.uint8)
    for k, v in allowed.items():
        lut[k] = v
    return lut[raw.astype(np.int64)]


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 ``(h, w, 3)`` -> float32 ``(H, W, 3)`` in [0, 1], bilinear and anti-aliased.

    Very large photographs (ISIC has some of 6000x4000 px) are first shrunk by
    an integer box filter (``PIL.Image.reduce``, itself an anti-aliasing
    filter) to no less than twice the target size; scikit-image then does the
    final anti-aliased bilinear resize. Same path for training and inference.
    """
    from PIL import Image
    from skimage.transform import resize

    factor = min(rgb.shape[0] // (2 * size[0]), rgb.shape[1] // (2 * size[1]))
    if factor >= 2:
        rgb = np.asarray(Image.fromarray(rgb).reduce(int(factor)))
    out = resize(rgb.astype(np.float32) / 255.0, (size[0], size[1], 3), order=1, mode="edge",
                 anti_aliasing=True, preserve_range=True)
    return out.astype(np.float32)


def resize_label(label: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour resize of a class-index map (no new values)."""
    from skimage.transform import resize

    return resize(label, tuple(size), order=0, mode="edge", anti_aliasing=False,
                  preserve_range=True).astype(np.uint8)


def image_2d(rgb: np.ndarray, spec: dict) -> np.ndarray:
    """RGB uint8 ``(h, w, 3)`` -> float32 ``(C, H, W)`` resized and normalised as in ``spec``."""
    img = resize_rgb(rgb, spec["size"])
    mean = np.asarray(spec["mean"], np.float32)
    std = np.asarray(spec["std"], np.float32)
    return np.ascontiguousarray(((img - mean) / std).transpose(2, 0, 1), dtype=np.float32)


# --------------------------------------------------------------------------- 3-D


def load_nifti(path: str | os.PathLike):
    """Open a NIfTI image and read its data once, turning any failure into a :class:`UserError`."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except FileNotFoundError:
        raise UserError(f"{path}: NIfTI file not found") from None
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile,
            nib.filebasedimages.ImageFileError) as exc:
        raise UserError(f"{path}: cannot read NIfTI ({exc}); the file is truncated or not NIfTI - "
                        "re-download or remove it") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise UserError(f"{path}: NIfTI has shape {data.shape}; expected one 3-D volume with a single "
                        "channel (multi-modal 4-D images are not supported)")
    return img, data


def canonical(img, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient ``data`` (stored orientation) to canonical RAS; also return the inverse transform.

    Same axis permutation/flips as ``nibabel.as_closest_canonical``; the
    transform back is ``nib.orientations`` ``ornt_transform(RAS, stored)``.
    """
    import nibabel.orientations as no

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


def volume_from(img, data: np.ndarray, path: str | os.PathLike, spec: dict) -> tuple[np.ndarray, Inverse]:
    """A loaded NIfTI (``img``, its 3-D ``data``) -> float32 ``(S, 1, H', W')`` and its :class:`Inverse`."""
    check_finite(data, path)
    canon, back = canonical(img, data)
    norm = zscore_nonzero(canon, path)
    axis = int(spec["slice_axis"])
    in_plane = tuple(s for a, s in enumerate(canon.shape) if a != axis)
    pad = pad_amounts(in_plane, tuple(spec["size"]))
    slices = to_slices(norm, axis, pad)[:, None]
    inverse = Inverse(ndim=3, shape=tuple(int(s) for s in data.shape), source=str(path),
                      affine=np.array(img.affine, dtype=np.float64), header=img.header.copy(),
                      slice_axis=axis, canonical_shape=tuple(int(s) for s in canon.shape),
                      pad=pad, to_original=back)
    return slices.astype(np.float32), inverse


# --------------------------------------------------------------------------- public API


def preprocess_file(path: str | os.PathLike, spec: dict) -> tuple[np.ndarray, Inverse]:
    """Preprocess one raw file exactly as ``prepare`` did for training.

    Returns ``(array, inverse)``: 2-D float32 ``(C, H, W)`` at training size;
    3-D float32 ``(S, 1, H', W')`` padded slices. ``inverse`` goes to
    :func:`restore` / :func:`save_prediction`.
    """
    if spec["ndim"] == 2:
        rgb = read_rgb(path)
        return image_2d(rgb, spec), Inverse(ndim=2, shape=tuple(int(s) for s in rgb.shape[:2]), source=str(path))
    if spec["ndim"] == 3:
        img, data = load_nifti(path)
        return volume_from(img, data, path, spec)
    raise ValueError(f"unknown spec ndim {spec['ndim']!r}")


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
            from skimage.transform import resize

            out = resize(pred, (pred.shape[0],) + tuple(inverse.shape), order=1, mode="edge",
                         anti_aliasing=False, preserve_range=True)
            return out.astype(np.float32)
        if pred.ndim != 2:
            raise ValueError(f"2-D labels must be (H, W), got {pred.shape}")
        return resize_label(pred, inverse.shape)
    lead = pred.shape[:1] if is_prob else ()
    core = pred.shape[len(lead):]
    axis = inverse.slice_axis
    in_plane = [s for a, s in enumerate(inverse.canonical_shape) if a != axis]
    (h0, _), (w0, _) = inverse.pad
    expect_s = inverse.canonical_shape[axis]
    if len(core) != 3 or core[0] != expect_s or core[1] < in_plane[0] + h0 or core[2] < in_plane[1] + w0:
        raise ValueError(f"3-D prediction of shape {pred.shape} does not match the prepared geometry "
                         f"({expect_s} slices of at least {in_plane[0] + h0}x{in_plane[1] + w0})")
    import nibabel.orientations as no

    cropped = pred[..., :, h0:h0 + in_plane[0], w0:w0 + in_plane[1]]
    canon = np.moveaxis(cropped, len(lead), len(lead) + axis)
    if lead:
        out = np.stack([no.apply_orientation(c, inverse.to_original) for c in canon])
    else:
        out = no.apply_orientation(canon, inverse.to_original)
    out = np.ascontiguousarray(out)
    assert out.shape[len(lead):] == tuple(inverse.shape), (out.shape, inverse.shape)
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
        from PIL import Image

        with atomic_path(out_path) as tmp:
            Image.fromarray(labels).save(tmp, format="PNG")
        return out_path
    import nibabel as nib

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
