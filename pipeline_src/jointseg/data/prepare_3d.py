"""``prepare`` for 3-D data: MSD tasks (one 3-D or 4-D NIfTI per case) and nnU-Net NIfTI channel files.

Each case is checked (label on the image grid, finite, integer classes that
the label map declares), turned into padded canonical slices ``(S, C, H', W')``
by :func:`jointseg.data.volumes.volume_from` (the exact function ``predict``
uses) and saved with its label slices. Test cases are also kept on their
original grid under ``test/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..io_utils import UserError
from .cases import Layout, RawCase, case_record, copy_test_images
from .images2d import map_labels
from .volumes import canonical, check_finite, check_same_grid, load_channels, load_nifti, to_slices, volume_from


def _load_case(case: RawCase, layout: Layout, identity: dict):
    """Image ``(img, data)`` and the checked class-index label volume ``(label img, label)``."""
    if layout.channel_files:
        img, data = load_channels(list(case.images), case.id)
    else:
        img, data = load_nifti(case.image)
    lab_img, lab = load_nifti(case.label)
    fix = "the label is not on the image grid - fix the header, resample the label or remove the pair"
    check_same_grid(lab_img, lab.shape, img, data.shape[:3], f"{case.label}: label", f"image {case.image.name}", fix)
    check_finite(lab, case.label)
    if np.issubdtype(lab.dtype, np.floating) and not np.array_equal(lab, np.round(lab)):
        raise UserError(f"{case.label}: label has non-integer values; labels must be class indices")
    return img, data, lab_img, map_labels(np.round(lab).astype(np.int64), identity, case.label)


def _fields(img, inverse, slices: np.ndarray, lab: np.ndarray, lab_slices: np.ndarray) -> dict:
    """The 3-D part of a case's manifest record: geometry, slices and the label values."""
    return {
        "shape": list(inverse.shape),
        "spacing": [float(z) for z in img.header.get_zooms()[:3]],
        "affine": [[float(v) for v in row] for row in inverse.affine],
        "canonical_shape": list(inverse.canonical_shape),
        "padded_shape": list(slices.shape[2:]),
        "pad": [list(p) for p in inverse.pad],
        "slices": int(slices.shape[0]),
        "foreground_slices": [int(i) for i in np.flatnonzero(lab_slices.reshape(len(lab_slices), -1).any(1))],
        "label_values": sorted(int(v) for v in np.unique(lab)),
    }


def prepare_3d(layout: Layout, split_of: dict, root: Path, tmp: Path, st) -> tuple[dict, list]:
    """Write the 3-D slices of every case into ``tmp``; return ``(preprocess spec, case records)``."""
    spec = {
        "format": st.format,
        "ndim": 3,
        "size": list(st.size),
        "in_channels": len(layout.channels),
        "channels": list(layout.channels),
        "slice_axis": st.slice_axis,
        "orientation": "RAS",
        "normalization": "zscore_nonzero",
        "pad_value": 0.0,
    }
    if layout.channel_files:
        spec.update(channel_files=True, file_ending=layout.file_ending)
    identity = {k: int(k) for k in layout.labels}
    records = []
    for case in tqdm(layout.cases, desc=f"prepare {st.dataset}", unit="case"):
        img, data, lab_img, lab = _load_case(case, layout, identity)
        channel_paths = list(case.images) if layout.channel_files else None
        slices, inverse = volume_from(img, data, case.image, spec, channel_paths)
        lab_slices = to_slices(canonical(lab_img, lab)[0], st.slice_axis, inverse.pad)
        np.save(tmp / "arrays" / f"{case.id}_image.npy", slices)
        np.save(tmp / "arrays" / f"{case.id}_label.npy", lab_slices)
        split = split_of[case.id]
        if split == "test":  # the original image(s) and label, as they are
            ext = ".nii.gz" if case.label.name.endswith(".gz") else ".nii"
            copy_test_images(case, tmp / "test" / "images", layout, ext)
            shutil.copyfile(case.label, tmp / "test" / "labels" / f"{case.id}{ext}")
        fields = _fields(img, inverse, slices, lab, lab_slices)
        records.append(case_record(case, split, root, layout, **fields))
    return spec, records
