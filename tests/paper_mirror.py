"""A synthetic, ISIC-sized mirror of the paper study's downloads (a test helper, not a test).

``build_mirror(folder)`` writes what ``config/paper.yaml``'s sources point at,
with very few cases, so the paper path (download over http -> prepare -> the
``paper`` preset at 256x256 -> full-size predictions -> summary) can run on a
CPU:

* the six ISIC 2017 Part 1 archives under their official names
  (``ISIC-2017_Training_Data.zip`` ...), each holding one folder of the same
  stem, like the real ones: ``ISIC_<7 digits>.jpg`` images of real-world
  sizes (540x722 up to 1500x2000 here, portrait and landscape; the real set
  goes from 540x722 to 4499x6748), ``ISIC_<id>_segmentation.png`` masks in
  0/255, and - as in the real training archive - ``_superpixels.png`` files
  and a metadata CSV that the adapter must ignore;
* ``Task04_Hippocampus.tar`` laid out like the Medical Segmentation Decathlon
  release (``dataset.json``, ``imagesTr/``, ``labelsTr/`` with labels 0/1/2,
  unlabelled ``imagesTs/`` and a macOS ``._`` resource-fork file, both of which
  the adapter must ignore).

Images come from the demo phantoms (``jointseg.data.phantoms``): a dermoscopy
phantom is drawn at its native ~100-160 px and resampled to the target size
(image bicubic; mask bilinear, then thresholded, so its edge stays smooth).
Everything is deterministic from ``seed``.
"""

from __future__ import annotations

import json
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# The demo's archive writers (fixed timestamps and encoder settings) and its phantoms.
from jointseg.data.demo import (
    ISIC_SPLITS,
    _jpeg_bytes,
    _nifti_gz,
    _png_bytes,
    _tar_add,
    _zip_write,
)
from jointseg.data.phantoms import isic_phantom, msd_affine, msd_phantom

MSD_TASK = "Task04_Hippocampus"
# (height, width) of real ISIC 2017 images: the common camera formats, both orientations.
# Cases take them in turn, so the default counts give the test split the largest
# landscape image and a small portrait one.
ISIC_SIZES = ((540, 722), (1022, 767), (1129, 1504), (2000, 1500), (767, 1022), (1500, 2000), (722, 540))
DEFAULT_COUNTS = {"train": 4, "val": 1, "test": 2}


@dataclass
class Mirror:
    """What :func:`build_mirror` wrote: archive paths and the cases inside them."""

    root: Path
    isic_archives: list[Path] = field(default_factory=list)  # in ISIC_SPLITS order, images then masks
    isic_sizes: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # split -> id -> (h, w)
    msd_archive: Path | None = None
    msd_cases: list[str] = field(default_factory=list)


def isic_case(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A dermoscopy phantom resampled to ``size`` (h, w): RGB uint8 image and 0/255 mask."""
    image, mask = isic_phantom(rng)
    h, w = size
    if (h > w) != (image.shape[0] > image.shape[1]):  # draw portrait cases upright
        image, mask = image.transpose(1, 0, 2), mask.T
    big = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BICUBIC))
    soft = np.asarray(Image.fromarray(mask).resize((w, h), Image.Resampling.BILINEAR))
    return np.ascontiguousarray(big), np.where(soft >= 128, 255, 0).astype(np.uint8)


def _superpixels(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A stand-in for the training archive's superpixel maps: blocky RGB-encoded ids."""
    h, w = size
    ids = rng.integers(0, 1 << 16, (h // 64 + 1, w // 64 + 1)).repeat(64, 0).repeat(64, 1)[:h, :w]
    return np.stack([ids & 255, ids >> 8, np.zeros_like(ids)], -1).astype(np.uint8)


def write_isic(out: Path, seed: int = 0, counts: dict[str, int] | None = None) -> Mirror:
    """The six ISIC 2017 Part 1 archives in ``out``; case sizes cycle through :data:`ISIC_SIZES`."""
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    out.mkdir(parents=True, exist_ok=True)
    mirror = Mirror(root=out)
    rng = np.random.default_rng([seed, 17])
    next_id, size_index = 1, 0
    for split, (img_stem, gt_stem, _) in ISIC_SPLITS.items():
        cases = []
        for _ in range(counts[split]):
            size = ISIC_SIZES[size_index % len(ISIC_SIZES)]
            size_index += 1
            cases.append((f"ISIC_{next_id:07d}", *isic_case(rng, size)))
            next_id += 1 + int(rng.integers(0, 4))  # gaps, like the real id list
        mirror.isic_sizes[split] = {cid: image.shape[:2] for cid, image, _ in cases}
        with zipfile.ZipFile(out / f"{img_stem}.zip", "w") as zf:
            _zip_write(zf, f"{img_stem}/", None)
            if split == "train":
                csv = "image_id,age_approximate,sex\n" + "".join(f"{cid},55,female\n" for cid, _, _ in cases)
                _zip_write(zf, f"{img_stem}/{img_stem}_metadata.csv", csv.encode())
            for cid, image, _ in cases:
                _zip_write(zf, f"{img_stem}/{cid}.jpg", _jpeg_bytes(image))
                if split == "train":
                    _zip_write(zf, f"{img_stem}/{cid}_superpixels.png", _png_bytes(_superpixels(rng, image.shape[:2])))
        with zipfile.ZipFile(out / f"{gt_stem}.zip", "w") as zf:
            _zip_write(zf, f"{gt_stem}/", None)
            for cid, _, mask in cases:
                _zip_write(zf, f"{gt_stem}/{cid}_segmentation.png", _png_bytes(mask))
        mirror.isic_archives += [out / f"{img_stem}.zip", out / f"{gt_stem}.zip"]
    return mirror


def write_msd(out: Path, seed: int = 0, cases: int = 5, unlabelled: int = 1) -> tuple[Path, list[str]]:
    """``Task04_Hippocampus.tar`` in ``out`` (MSD layout); return its path and the labelled case ids."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 4])
    members, training, test, ids = [], [], [], []
    for n in range(cases + unlabelled):
        image, label, zooms = msd_phantom(rng)
        affine = msd_affine(rng, zooms)
        cid = f"hippocampus_{3 * n + 1:03d}"
        if n < cases:
            members.append((f"{MSD_TASK}/imagesTr/{cid}.nii.gz", _nifti_gz(image, affine, zooms)))
            members.append((f"{MSD_TASK}/labelsTr/{cid}.nii.gz", _nifti_gz(label, affine, zooms)))
            training.append({"image": f"./imagesTr/{cid}.nii.gz", "label": f"./labelsTr/{cid}.nii.gz"})
            ids.append(cid)
        else:
            members.append((f"{MSD_TASK}/imagesTs/{cid}.nii.gz", _nifti_gz(image, affine, zooms)))
            test.append(f"./imagesTs/{cid}.nii.gz")
    # The official tars carry AppleDouble files; they are not NIfTI and must be skipped.
    members.append((f"{MSD_TASK}/imagesTr/._{ids[0]}.nii.gz", b"\x00\x05\x16\x07" + bytes(60)))
    meta = {
        "name": "Hippocampus",
        "description": "Left and right hippocampus segmentation (synthetic mirror)",
        "reference": "Vanderbilt University Medical Center",
        "licence": "CC-BY-SA 4.0",
        "release": "1.0 04/05/2018",
        "tensorImageSize": "3D",
        "modality": {"0": "MRI"},
        "labels": {"0": "background", "1": "Anterior", "2": "Posterior"},
        "numTraining": len(training),
        "numTest": len(test),
        "training": training,
        "test": test,
    }
    path = out / f"{MSD_TASK}.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        for folder in ("", "/imagesTr", "/labelsTr", "/imagesTs"):
            _tar_add(tf, f"{MSD_TASK}{folder}", None)
        _tar_add(tf, f"{MSD_TASK}/dataset.json", (json.dumps(meta, indent=4) + "\n").encode())
        for name, data in sorted(members):
            _tar_add(tf, name, data)
    return path, ids


def build_mirror(out: str | Path, seed: int = 0, counts: dict[str, int] | None = None, msd_cases: int = 5) -> Mirror:
    """Write the ISIC archives and the MSD tar into ``out`` (one flat folder, like a bucket)."""
    mirror = write_isic(Path(out), seed, counts)
    mirror.msd_archive, mirror.msd_cases = write_msd(Path(out), seed, msd_cases)
    return mirror
