"""Reading class-index label files (references and predictions) for evaluation.

A label file is ``<case id>.nii.gz|.nii|.png|.npy`` (:data:`jointseg.paths.LABEL_SUFFIXES`)
holding integer class indices. NIfTI files carry their voxel spacing (mm) and
affine; PNG and ``.npy`` files have neither, so their distances are in pixels.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from ..io_utils import UserError
from ..paths import LABEL_SUFFIXES, case_id

Label = tuple[np.ndarray, "tuple[float, ...] | None", "np.ndarray | None"]


def list_cases(folder: str | Path, role: str) -> dict[str, Path]:
    """Map case id -> file for the label files directly inside ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: {role} folder not found; pass an existing folder of label files")
    cases: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        cid = case_id(path, LABEL_SUFFIXES)
        if cid is None or not path.is_file() or path.name.startswith("."):
            continue
        if cid in cases:
            raise UserError(f"{folder}: case '{cid}' has two files ({cases[cid].name}, {path.name}); keep one per case")
        cases[cid] = path
    if not cases:
        raise UserError(
            f"{folder}: no {role} files ({', '.join(LABEL_SUFFIXES)}) found; check the folder and file names"
        )
    return cases


def _load(path: Path) -> Label:
    name = path.name.lower()
    if name.endswith((".nii.gz", ".nii")):
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        while data.ndim > 3 and data.shape[-1] == 1:
            data = data[..., 0]
        spacing = tuple(float(z) for z in img.header.get_zooms()[: data.ndim])
        return data, spacing, np.asarray(img.affine, dtype=float)
    if name.endswith(".png"):
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16", "1"):
                raise UserError(
                    f"{path}: PNG mode {im.mode} is not a single-channel label image; "
                    "save class indices as a grey-scale (mode L) PNG"
                )
            return np.asarray(im), None, None
    return np.load(path, allow_pickle=False), None, None


def read_label(path: Path) -> Label:
    """Read a class-index label file: ``(labels, spacing or None, affine or None)``."""
    try:
        data, spacing, affine = _load(path)
    except UserError:
        raise
    except Exception as exc:  # nibabel/PIL/numpy raise many types for a broken file
        raise UserError(f"{path}: cannot read label file ({type(exc).__name__}: {exc}); re-export it") from None
    data = np.asarray(data)
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise UserError(f"{path}: labels must be integer class indices, found non-integer values")
        data = data.astype(np.int64)
    elif data.dtype.kind not in "iub":
        raise UserError(f"{path}: labels of dtype {data.dtype} are not class indices")
    if data.ndim not in (2, 3):
        raise UserError(f"{path}: labels must be 2-D or 3-D, got shape {data.shape}")
    return data, spacing, affine
