"""2-D images: reading RGB photographs, grey/RGB PNG channels and masks; resizing.

ISIC-like RGB photographs: uint8 -> float in [0, 1] -> resized (scikit-image,
order 1, anti-aliased, after an integer box pre-reduction of very large
photographs). nnU-Net 2-D PNG channels: each file gives one (grey) or three
(RGB) channels, kept as float values (the per-channel z-score that follows
makes the scale irrelevant) and resized the same way, channel by channel.
Masks are resized with order 0 (no new values).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.transform import resize

from ..io_utils import UserError


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An RGB image as uint8 ``(H, W, 3)``; clear errors for unreadable files or other channel counts."""
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except FileNotFoundError:
        raise UserError(f"{path}: image file not found") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(
            f"{path}: cannot read image ({exc}); the file is truncated or not an image - re-download or remove it"
        ) from None
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if channels != 3 or mode not in ("RGB",):
        raise UserError(
            f"{path}: image has {channels} channel(s) (mode {mode}); expected RGB with 3 "
            "channels - convert it to RGB or remove it"
        )
    return arr


def read_mask(path: str | os.PathLike, palette_indices: bool = False) -> np.ndarray:
    """A single-channel mask as an integer array ``(H, W)``.

    A palette PNG gives its grey values, or with ``palette_indices`` its raw
    indices (nnU-Net label PNGs store class indices, whatever the colours).
    """
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P" and not palette_indices:
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
        raise UserError(
            f"{path}: label values {bad[:10]} are outside the declared label map "
            f"{sorted(allowed)}; fix the file or the data set's labels"
        )
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
    factor = min(rgb.shape[0] // (2 * size[0]), rgb.shape[1] // (2 * size[1]))
    if factor >= 2:
        rgb = np.asarray(Image.fromarray(rgb).reduce(int(factor)))
    out = resize(
        rgb.astype(np.float32) / 255.0,
        (size[0], size[1], 3),
        order=1,
        mode="edge",
        anti_aliasing=True,
        preserve_range=True,
    )
    return out.astype(np.float32)


def resize_label(label: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour resize of a class-index map (no new values)."""
    return resize(label, tuple(size), order=0, mode="edge", anti_aliasing=False, preserve_range=True).astype(np.uint8)


def image_2d(rgb: np.ndarray, spec: dict) -> np.ndarray:
    """RGB uint8 ``(h, w, 3)`` -> float32 ``(C, H, W)`` resized and normalised as in ``spec``."""
    return normalise_2d(resize_rgb(rgb, spec["size"]), spec)


def read_png_channels(paths: list[Path], case: str) -> np.ndarray:
    """The channel files of one 2-D case (grey: 1 channel, RGB(A): 3-4) as float32 ``(C, h, w)``."""
    planes = []
    for path in paths:
        try:
            with Image.open(path) as im:
                im.load()
                arr = np.asarray(im.convert("RGB") if im.mode == "P" else im)
        except FileNotFoundError:
            raise UserError(f"{path}: channel file of case '{case}' not found") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise UserError(f"{path}: cannot read image ({exc}); the file is truncated or not an image") from None
        arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
        if planes and arr.shape[1:] != planes[0].shape[1:]:
            raise UserError(
                f"case '{case}': channel {Path(path).name} has shape {arr.shape[1:]} but "
                f"{Path(paths[0]).name} has {planes[0].shape[1:]}; all channels of a case "
                "must share one grid"
            )
        planes.append(arr.astype(np.float32))
    return np.concatenate(planes)


def resize_channels(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float ``(C, h, w)`` -> float32 ``(C, H, W)``, bilinear and anti-aliased per channel."""
    out = resize(
        image.astype(np.float32),
        (image.shape[0], size[0], size[1]),
        order=1,
        mode="edge",
        anti_aliasing=True,
        preserve_range=True,
    )
    return out.astype(np.float32)


def resized_2d(
    paths: list[Path], size: tuple[int, int], channel_files: bool, case: str
) -> tuple[np.ndarray, tuple[int, ...]]:
    """A 2-D case's image at training ``size``, float32 ``(H, W, C)`` before the z-score, and its ``(h, w)``.

    One RGB photograph (:func:`resize_rgb`) or the nnU-Net PNG channel files
    of the case (:func:`resize_channels`): the one path of training and inference.
    """
    if channel_files:
        image = read_png_channels(paths, case)
        return resize_channels(image, size).transpose(1, 2, 0), tuple(int(s) for s in image.shape[1:])
    rgb = read_rgb(paths[0])
    return resize_rgb(rgb, size), tuple(int(s) for s in rgb.shape[:2])


def normalise_2d(image_hwc: np.ndarray, spec: dict) -> np.ndarray:
    """Resized ``(H, W, C)`` -> float32 ``(C, H, W)`` z-scored with the spec's per-channel mean/std."""
    mean = np.asarray(spec["mean"], np.float32)
    std = np.asarray(spec["std"], np.float32)
    return np.ascontiguousarray(((image_hwc - mean) / std).transpose(2, 0, 1), dtype=np.float32)
