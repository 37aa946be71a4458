"""Synthetic nnU-Net v2 raw data sets for tests (2-D PNG or 3-D NIfTI, any channel count).

``make_nnunet_dataset(root, ndim=3, channels=2, cases=8, seed=0)`` writes
``root/Dataset901_Synth/`` with ``dataset.json``, ``imagesTr/<case>_<XXXX><ending>``
and ``labelsTr/<case><ending>``, and returns that folder. Each case holds one
blob (label 1, "tumor") inside a nonzero "head" region; every channel shows
the blob with its own contrast (channel 0 brighter, channel 1 darker, ...), so
a model can learn from any channel. 3-D volumes carry a permuted, flipped,
non-identity affine, so geometry round trips are real tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

AFFINE_3D = np.array([[0.0, 0.0, -1.5, 40.0], [-0.9, 0.0, 0.0, 12.0], [0.0, 1.1, 0.0, -30.0], [0.0, 0.0, 0.0, 1.0]])
DEFAULT_LABELS = {"background": 0, "tumor": 1}


def _case_arrays(rng: np.random.Generator, ndim: int, channels: int) -> tuple[list[np.ndarray], np.ndarray]:
    shape = (
        (int(rng.integers(40, 57)), int(rng.integers(44, 61)))
        if ndim == 2
        else (int(rng.integers(20, 25)), int(rng.integers(22, 27)), int(rng.integers(10, 13)))
    )
    grid = np.indices(shape).astype(np.float64)
    centre = np.array(shape) / 2 + rng.uniform(-2, 2, ndim)
    head = sum(((g - c) / (0.46 * n)) ** 2 for g, c, n in zip(grid, np.array(shape) / 2, shape)) < 1
    radius = rng.uniform(0.14, 0.22) * min(shape[:2])
    blob = sum((g - c) ** 2 for g, c in zip(grid, centre)) < radius**2
    label = (blob & head).astype(np.uint8)
    images = []
    for c in range(channels):
        contrast = 60.0 if c % 2 == 0 else -45.0
        img = np.where(head, 100.0 + 20 * c + contrast * label + rng.normal(0, 6, shape), 0.0)
        images.append(np.clip(img, 0, 255))
    return images, label


def _write(path: Path, array: np.ndarray, ndim: int, dtype) -> None:
    if ndim == 2:
        from PIL import Image

        Image.fromarray(np.round(array).astype(np.uint8)).save(path)
    else:
        import nibabel as nib

        nib.save(nib.Nifti1Image(np.asarray(array).astype(dtype), AFFINE_3D), str(path))


def make_nnunet_dataset(
    root: str | Path,
    *,
    ndim: int,
    channels: int,
    cases: int,
    seed: int,
    labels: dict | None = None,
    test_cases: int = 0,
    labelled_test: bool = False,
    file_ending: str | None = None,
) -> Path:
    """Write a synthetic nnU-Net raw data set under ``root``; return its folder.

    ``ndim`` 2 -> grey PNG channels (``.png``), 3 -> NIfTI (``.nii.gz`` unless
    ``file_ending`` says ``.nii``). ``test_cases`` extra cases go to
    ``imagesTs`` (with ``labelsTs`` when ``labelled_test``). Case ids are
    ``synth_000``, ``synth_001``, ...; the same arguments give the same bytes.
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim}")
    ending = file_ending or (".png" if ndim == 2 else ".nii.gz")
    task = Path(root) / "Dataset901_Synth"
    rng = np.random.default_rng(seed)
    for n in range(cases + test_cases):
        images_dir, labels_dir = ("imagesTr", "labelsTr") if n < cases else ("imagesTs", "labelsTs")
        images, label = _case_arrays(rng, ndim, channels)
        cid = f"synth_{n:03d}"
        (task / images_dir).mkdir(parents=True, exist_ok=True)
        for c, img in enumerate(images):
            _write(task / images_dir / f"{cid}_{c:04d}{ending}", img, ndim, np.float32)
        if n < cases or labelled_test:
            (task / labels_dir).mkdir(parents=True, exist_ok=True)
            _write(task / labels_dir / f"{cid}{ending}", label, ndim, np.uint8)
    meta = {
        "channel_names": {str(c): f"MR{c}" for c in range(channels)},
        "labels": dict(labels or DEFAULT_LABELS),
        "numTraining": cases,
        "file_ending": ending,
        "name": "Synth",
        "description": "jointseg test data (synthetic blobs)",
    }
    (task / "dataset.json").write_text(json.dumps(meta, indent=2))
    return task
