"""Per-file preprocessing shared by ``prepare`` (training data) and ``predict`` (inference).

The ``spec`` is the manifest's ``"preprocess"`` dict (also stored in every
checkpoint); with it a raw file (or the channel files of one case) is turned
into exactly the arrays the model was trained on, and a prediction is mapped
back onto the file's original grid.

2-D (``spec["ndim"] == 2``)
    ISIC-like RGB photographs (:mod:`.images2d`): uint8 -> [0, 1] -> resized
    to ``spec["size"]`` (order 1, anti-aliased) -> per-channel z-score with the
    training split's ``mean``/``std`` -> float32 ``(C, H, W)``. nnU-Net PNG
    channel files (``spec["channel_files"]``): stacked, resized and z-scored
    the same way. Masks: order 0.

3-D (``spec["ndim"] == 3``, NIfTI, :mod:`.volumes`)
    Canonical RAS, per-channel nonzero z-score, slices along
    ``spec["slice_axis"]`` zero-padded to at least ``spec["size"]`` -> float32
    ``(S, C, H', W')``. Undoing the padding, the slicing and the reorientation
    is exact.

:func:`restore` / :func:`save_prediction` (:mod:`.geometry`) map a prediction
back. The helpers of both sub-modules stay importable from here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io_utils import UserError
from .cases import channel_file_parts
from .geometry import Inverse, restore, save_prediction
from .images2d import (
    image_2d,
    map_labels,
    normalise_2d,
    read_mask,
    read_png_channels,
    read_rgb,
    resize_channels,
    resize_label,
    resize_rgb,
    resized_2d,
)
from .volumes import (
    canonical,
    check_finite,
    load_channels,
    load_nifti,
    pad_amounts,
    to_slices,
    volume_from,
    zscore_nonzero,
)

SPEC_VERSION = 1

__all__ = [
    "SPEC_VERSION",
    "Inverse",
    "canonical",
    "case_name",
    "check_finite",
    "image_2d",
    "load_channels",
    "load_nifti",
    "map_labels",
    "normalise_2d",
    "pad_amounts",
    "preprocess_file",
    "read_mask",
    "read_png_channels",
    "read_rgb",
    "resize_channels",
    "resize_label",
    "resize_rgb",
    "resized_2d",
    "restore",
    "save_prediction",
    "to_slices",
    "volume_from",
    "zscore_nonzero",
]


def case_name(paths: list[Path], spec: dict) -> str:
    """The case id of a case's files (``<case>_0000<ending>`` -> ``<case>`` for channel files)."""
    name = Path(paths[0]).name
    parts = channel_file_parts(name, spec.get("file_ending") or "") if spec.get("channel_files") else None
    return parts[0] if parts else name


def _check_channels(count: int, spec: dict, case: str, paths: list[Path]) -> None:
    if count != int(spec["in_channels"]):
        raise UserError(
            f"case '{case}': {count} channel(s) in {[Path(p).name for p in paths]}; this data set / "
            f"checkpoint expects {spec['in_channels']} ({', '.join(spec.get('channels') or [])}); "
            "a channel file is missing or extra"
        )


def preprocess_file(path: str | os.PathLike | list, spec: dict) -> tuple[np.ndarray, Inverse]:
    """Preprocess one raw file (or the list of a case's channel files) exactly as ``prepare`` did.

    Returns ``(array, inverse)``: 2-D float32 ``(C, H, W)`` at training size;
    3-D float32 ``(S, C, H', W')`` padded slices. ``inverse`` goes to
    :func:`restore` / :func:`save_prediction`.
    """
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    channel_files = bool(spec.get("channel_files"))
    if not channel_files and len(paths) != 1:
        raise UserError(f"{paths[0]}: this checkpoint reads one file per case, got {len(paths)}")
    case = case_name(paths, spec)
    if spec["ndim"] == 2:
        resized, shape = resized_2d(paths, tuple(spec["size"]), channel_files, case)
        _check_channels(resized.shape[-1], spec, case, paths)
        return normalise_2d(resized, spec), Inverse(ndim=2, shape=shape, source=str(paths[0]))
    if spec["ndim"] == 3:
        if channel_files:
            _check_channels(len(paths), spec, case, paths)
            img, data = load_channels(paths, case)
            return volume_from(img, data, paths[0], spec, channel_paths=paths)
        img, data = load_nifti(paths[0])
        return volume_from(img, data, paths[0], spec)
    raise ValueError(f"unknown spec ndim {spec['ndim']!r}")
