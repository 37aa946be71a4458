"""``jointseg make-demo``: the embedded synthetic demo data sets.

Two small data sets generated deterministically from a seed and laid out
exactly like the real archives, so the same download -> prepare code runs on
them as on the real data (no network):

* ``isic/``: the six ISIC 2017 Part 1 zips (``ISIC-2017_Training_Data.zip`` ...
  with the official inner folders, JPEG images ``ISIC_<id>.jpg``, PNG masks
  ``ISIC_<id>_segmentation.png`` in 0/255 and the training metadata CSV) of
  dermoscopy-like phantoms (:func:`jointseg.data.phantoms.isic_phantom`). Ids
  start at 9000000 so they never clash with real ISIC ids.
* ``Task99_DemoHippocampus.tar``: an MSD task (``imagesTr``, ``labelsTr``,
  ``dataset.json``) of head-like MRI phantoms (:func:`~jointseg.data.phantoms.msd_phantom`)
  stored with an oblique, axis-flipped and permuted affine
  (:func:`~jointseg.data.phantoms.msd_affine`), a non-zero origin and
  anisotropic spacing.

Byte-identical regeneration: zip/tar entries carry fixed timestamps and
owners, zips are stored (not deflated), JPEGs use fixed encoder settings and
``.nii.gz`` files are gzipped with ``mtime=0``. The bytes depend on the pinned
Pillow (libjpeg-turbo, zlib) and on the system zlib for the ``.nii.gz``.

    jointseg make-demo --out pipeline_src/jointseg/data/demo [--lock config/checksums.demo.lock.json]
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from ..io_utils import atomic_path
from .phantoms import (
    isic_phantom,  # noqa: F401
    msd_affine,
    msd_phantom,
)  # the phantom functions stay importable from here

ZIP_DATE = (2017, 1, 1, 0, 0, 0)
TAR_MTIME = 1483228800  # 2017-01-01T00:00:00Z
ISIC_SPLITS = {  # split -> (image archive stem, ground-truth archive stem, count)
    "train": ("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth", 60),
    "val": ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth", 12),
    "test": ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth", 20),
}
MSD_TASK = "Task99_DemoHippocampus"
MSD_CASES = 20


def make_demo(out: str | Path, seed: int = 0) -> list[tuple[str, Path]]:
    """Write both demo data sets under ``out``; return ``(dataset name, archive path)`` pairs."""
    out = Path(out)
    written = [("demo_isic", p) for p in make_isic(out / "isic", seed)]
    written.append(("demo_msd", make_msd(out, seed)))
    return written


# --------------------------------------------------------------------------- ISIC archives


def _zip_write(zf: zipfile.ZipFile, name: str, data: bytes | None) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.create_system = 3
    info.compress_type = zipfile.ZIP_STORED  # JPEG/PNG are compressed; avoids zlib-version drift
    info.external_attr = ((0o40755 << 16) | 0x10) if data is None else (0o100644 << 16)
    zf.writestr(info, b"" if data is None else data)


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def _jpeg_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=88, subsampling=2, optimize=False, progressive=False)
    return buf.getvalue()


def make_isic(out: Path, seed: int = 0) -> list[Path]:
    """Write the six ISIC-2017-like zips into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    next_id = 9000000
    for split_index, (split, (img_stem, gt_stem, count)) in enumerate(ISIC_SPLITS.items()):
        rng = np.random.default_rng([seed, 2, split_index])
        cases = []
        for _ in range(count):
            image, mask = isic_phantom(rng)
            cases.append((f"ISIC_{next_id:07d}", image, mask, rng.integers(20, 85), rng.choice(["male", "female"])))
            next_id += 1 + int(rng.integers(0, 3))  # gaps, like the real id list
        for stem, kind in ((img_stem, "image"), (gt_stem, "mask")):
            path = out / f"{stem}.zip"
            with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
                _zip_write(zf, f"{stem}/", None)
                if kind == "image" and split == "train":
                    csv = "image_id,age_approximate,sex\n" + "".join(
                        f"{cid},{int(age) // 5 * 5},{sex}\n" for cid, _, _, age, sex in cases
                    )
                    _zip_write(zf, f"{stem}/{stem}_metadata.csv", csv.encode())
                for cid, image, mask, _, _ in cases:
                    if kind == "image":
                        _zip_write(zf, f"{stem}/{cid}.jpg", _jpeg_bytes(image))
                    else:
                        _zip_write(zf, f"{stem}/{cid}_segmentation.png", _png_bytes(mask))
            written.append(path)
    return written


# --------------------------------------------------------------------------- MSD archive


def _nifti_gz(array: np.ndarray, affine: np.ndarray, zooms: np.ndarray) -> bytes:
    img = nib.Nifti1Image(array, affine)
    img.header.set_zooms(tuple(float(z) for z in zooms))
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return gzip.compress(img.to_bytes(), compresslevel=9, mtime=0)


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = TAR_MTIME, 0, 0, "", ""
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(info)
    else:
        info.mode, info.size = 0o644, len(data)
        tf.addfile(info, io.BytesIO(data))


def make_msd(out: Path, seed: int = 0) -> Path:
    """Write ``Task99_DemoHippocampus.tar`` into ``out``; return its path."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 3])
    entries, members = [], []
    for n in range(MSD_CASES):
        image, label, zooms = msd_phantom(rng)
        affine = msd_affine(rng, zooms)
        cid = f"hippocampus_{n * 3 + 1:03d}"
        members.append((f"{MSD_TASK}/imagesTr/{cid}.nii.gz", _nifti_gz(image, affine, zooms)))
        members.append((f"{MSD_TASK}/labelsTr/{cid}.nii.gz", _nifti_gz(label, affine, zooms)))
        entries.append({"image": f"./imagesTr/{cid}.nii.gz", "label": f"./labelsTr/{cid}.nii.gz"})
    meta = {
        "name": "DemoHippocampus",
        "description": "Synthetic head-like MRI phantoms (jointseg demo); two adjacent structures",
        "reference": "jointseg make-demo (synthetic)",
        "licence": "CC-BY-SA 4.0",
        "release": "1.0",
        "tensorImageSize": "3D",
        "modality": {"0": "MRI"},
        "labels": {"0": "background", "1": "Anterior", "2": "Posterior"},
        "numTraining": len(entries),
        "numTest": 0,
        "training": entries,
        "test": [],
    }
    path = out / f"{MSD_TASK}.tar"
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tf:
        for folder in ("", "/imagesTr", "/labelsTr"):
            _tar_add(tf, f"{MSD_TASK}{folder}", None)
        _tar_add(tf, f"{MSD_TASK}/dataset.json", (json.dumps(meta, indent=4) + "\n").encode())
        for name, data in sorted(members):
            _tar_add(tf, name, data)
    return path
