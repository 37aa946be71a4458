"""``prepare`` for 2-D data (an adapter's ``Layout`` with ``ndim`` 2): ISIC-like RGB photographs,
nnU-Net PNG channel files.

Images are resized to the training size and z-scored per channel with the
mean/std of the *training* split (two passes: resize and accumulate, then
normalise); labels are mapped to class indices and resized with order 0.
Test cases are also kept on their original grid under ``test/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..io_utils import UserError
from .cases import Layout, RawCase, case_record, copy_test_images
from .geometry import Inverse, save_prediction
from .images2d import map_labels, normalise_2d, read_mask, resize_label, resized_2d

RESIZE = {"image_order": 1, "anti_aliasing": True, "label_order": 0}


def _pair(case: RawCase, size, label_values: dict, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Resized image ``(H, W, C)`` (RGB in [0, 1], or channels) and the class-index label on the original grid."""
    image, shape = resized_2d(list(case.images), size, layout.channel_files, case.id)
    if image.shape[-1] != len(layout.channels):  # RGB photographs always have 3
        raise UserError(
            f"case '{case.id}': {image.shape[-1]} channel(s) in {[p.name for p in case.images]}, "
            f"dataset.json declares {len(layout.channels)}; a channel file is missing or has the wrong colour mode"
        )
    raw = read_mask(case.label, palette_indices=layout.channel_files)  # nnU-Net PNGs store class indices
    if raw.shape != shape:
        raise UserError(
            f"{case.label}: label shape {raw.shape} differs from image {case.image.name} shape {shape} "
            f"of case '{case.id}'; fix or remove the case"
        )
    return image, map_labels(raw, label_values, case.label)


def prepare_2d(layout: Layout, split_of: dict, root: Path, tmp: Path, st) -> tuple[dict, list]:
    """Write the 2-D arrays of every case into ``tmp``; return ``(preprocess spec, case records)``."""
    n_channels = len(layout.channels)
    if layout.label_values is None:  # the masks hold class indices
        label_values = {k: int(k) for k in layout.labels}
    else:
        label_values = dict(layout.label_values)
        undeclared = sorted({str(v) for v in label_values.values()} - set(layout.labels))
        if undeclared:
            raise UserError(
                f"data set '{st.dataset}': {st.format} masks give classes {undeclared} missing from "
                f"the label map {layout.labels}; declare them"
            )
    records, sums, sqs, count = [], np.zeros(n_channels), np.zeros(n_channels), 0
    for case in tqdm(layout.cases, desc=f"prepare {st.dataset}", unit="case"):
        img, lab = _pair(case, st.size, label_values, layout)
        split = split_of[case.id]
        if split == "train":
            flat = img.reshape(-1, n_channels).astype(np.float64)
            sums += flat.sum(0)
            sqs += (flat**2).sum(0)
            count += flat.shape[0]
        np.save(tmp / "arrays" / f"{case.id}_image.npy", img)  # normalised in the second pass
        np.save(tmp / "arrays" / f"{case.id}_label.npy", resize_label(lab, st.size))
        if split == "test":  # the original image(s) and the class-index PNG on the original grid
            copy_test_images(case, tmp / "test" / "images", layout, case.image.suffix.lower())
            original = Inverse(ndim=2, shape=lab.shape, source=str(case.label))
            save_prediction(lab, original, tmp / "test" / "labels" / f"{case.id}.png")
        labels = sorted(int(v) for v in np.unique(lab))
        records.append(case_record(case, split, root, layout, shape=list(lab.shape), spacing=None, label_values=labels))
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
