"""``prepare`` for 2-D data: ISIC-like RGB photographs and nnU-Net PNG channel files.

Images are resized to the training size and z-scored per channel with the
mean/std of the *training* split (two passes: resize and accumulate, then
normalise); labels are mapped to class indices and resized with order 0.
Test cases are also kept on their original grid under ``test/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..io_utils import UserError
from . import isic
from .cases import Layout, RawCase
from .geometry import Inverse, save_prediction
from .images2d import (
    map_labels,
    normalise_2d,
    read_mask,
    read_png_channels,
    read_rgb,
    resize_channels,
    resize_label,
    resize_rgb,
)

RESIZE = {"image_order": 1, "anti_aliasing": True, "label_order": 0}


def _isic_pair(case: RawCase, size, label_values: dict) -> tuple[np.ndarray, np.ndarray]:
    """Resized RGB ``(H, W, 3)`` in [0, 1] and the class-index mask on the original grid."""
    rgb = read_rgb(case.image)
    raw = read_mask(case.label)
    if raw.shape != rgb.shape[:2]:
        raise UserError(
            f"{case.label}: mask shape {raw.shape} differs from image {case.image.name} "
            f"shape {rgb.shape[:2]}; fix or remove the pair"
        )
    return resize_rgb(rgb, size), map_labels(raw, label_values, case.label)


def _channels_pair(case: RawCase, size, label_values: dict, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Resized channels ``(H, W, C)`` and the class-index label of one nnU-Net PNG case."""
    image = read_png_channels(list(case.images), case.id)
    if image.shape[0] != channels:
        raise UserError(
            f"case '{case.id}': {image.shape[0]} channel(s) in {[p.name for p in case.images]}, "
            f"dataset.json declares {channels}; a channel file is missing or has the wrong colour mode"
        )
    raw = read_mask(case.label, palette_indices=True)
    if raw.shape != image.shape[1:]:
        raise UserError(
            f"{case.label}: label shape {raw.shape} differs from the image shape {image.shape[1:]} "
            f"of case '{case.id}'; fix or remove the case"
        )
    return resize_channels(image, size).transpose(1, 2, 0), map_labels(raw, label_values, case.label)


def _copy_test_case(case: RawCase, lab: np.ndarray, tmp: Path, layout: Layout) -> None:
    """The original image file(s) under ``test/images`` and the class-index PNG under ``test/labels``."""
    if layout.channel_files:  # keep nnU-Net names so predict finds every channel of a case
        for path in case.images:
            shutil.copyfile(path, tmp / "test" / "images" / path.name)
    else:
        shutil.copyfile(case.image, tmp / "test" / "images" / f"{case.id}{case.image.suffix.lower()}")
    save_prediction(
        lab, Inverse(ndim=2, shape=lab.shape, source=str(case.label)), tmp / "test" / "labels" / f"{case.id}.png"
    )


def _record(case: RawCase, split: str, root: Path, lab: np.ndarray, layout: Layout) -> dict:
    rec = {
        "id": case.id,
        "split": split,
        "image": f"arrays/{case.id}_image.npy",
        "label": f"arrays/{case.id}_label.npy",
        "source_image": case.image.relative_to(root).as_posix(),
        "source_label": case.label.relative_to(root).as_posix(),
        "shape": list(lab.shape),
        "spacing": None,
        "label_values": sorted(int(v) for v in np.unique(lab)),
    }
    if layout.channel_files:
        rec["source_images"] = [p.relative_to(root).as_posix() for p in case.images]
    return rec


def prepare_2d(layout: Layout, split_of: dict, root: Path, tmp: Path, st) -> tuple[dict, list]:
    """Write the 2-D arrays of every case into ``tmp``; return ``(preprocess spec, case records)``."""
    n_channels = len(layout.channels)
    if layout.channel_files:
        label_values = {k: int(k) for k in layout.labels}
    else:
        label_values = dict(isic.LABEL_VALUES)
        undeclared = sorted({str(v) for v in label_values.values()} - set(layout.labels))
        if undeclared:
            raise UserError(
                f"data set '{st.dataset}': ISIC masks give classes {undeclared} missing from "
                f"the label map {layout.labels}; declare them"
            )
    records, sums, sqs, count = [], np.zeros(n_channels), np.zeros(n_channels), 0
    for case in tqdm(layout.cases, desc=f"prepare {st.dataset}", unit="case"):
        if layout.channel_files:
            img, lab = _channels_pair(case, st.size, label_values, n_channels)
        else:
            img, lab = _isic_pair(case, st.size, label_values)
        split = split_of[case.id]
        if split == "train":
            flat = img.reshape(-1, n_channels).astype(np.float64)
            sums += flat.sum(0)
            sqs += (flat**2).sum(0)
            count += flat.shape[0]
        np.save(tmp / "arrays" / f"{case.id}_image.npy", img)  # normalised in the second pass
        np.save(tmp / "arrays" / f"{case.id}_label.npy", resize_label(lab, st.size))
        if split == "test":
            _copy_test_case(case, lab, tmp, layout)
        records.append(_record(case, split, root, lab, layout))
    if count == 0:
        raise UserError(f"{root}: no training cases; cannot compute normalisation statistics")
    mean = sums / count
    std = np.sqrt(np.maximum(sqs / count - mean**2, 1e-12))
    spec = {
        "format": st.format,
        "ndim": 2,
        "size": list(st.size),
        "in_channels": n_channels,
        "channels": list(layout.channels),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "resize": {**RESIZE, "box_prereduce": not layout.channel_files},
        "label_values": label_values,
    }
    if layout.channel_files:
        spec.update(channel_files=True, file_ending=layout.file_ending)
    for rec in records:
        path = tmp / rec["image"]
        np.save(path, normalise_2d(np.load(path), spec))
    return spec, records
