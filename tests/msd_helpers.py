"""A tiny MSD task on disk (3-D or multi-modal 4-D NIfTI), shared by the prepare and predict tests,
and the ``jointseg prepare`` runner and failure check of the prepare tests (any format)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from jointseg.cli import main as cli

AFFINE = np.array(
    [
        [0.0, 0.0, -1.5, 40.0],  # permuted, flipped, oblique-free but non-identity
        [-0.9, 0.05, 0.0, 12.0],
        [0.0, 1.1, 0.0, -30.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def _nii(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> None:
    nib.save(nib.Nifti1Image(data, affine), str(path))


def make_msd(root: Path, n: int = 5, modalities: int = 1) -> Path:
    """A tiny MSD task; ``modalities > 1`` stores 4-D ``(X, Y, Z, C)`` images as Task01 BrainTumour does."""
    task = root / "Task09_Tiny"
    (task / "imagesTr").mkdir(parents=True)
    (task / "labelsTr").mkdir()
    rng = np.random.default_rng(1)
    training = []
    for i in range(n):
        shape = (12 + i, 9 + i, 7)
        lab = np.zeros(shape, np.uint8)
        lab[3:7, 2:5, 2:5] = 1
        lab[7:10, 2:5, 2:5] = 2
        img = np.stack(
            [rng.normal(100 + 300 * m, 10 + 5 * m, shape) + (50.0 - 80 * m) * lab for m in range(modalities)], -1
        ).astype(np.float32)
        img[0] = 0  # a zero background slab (excluded from the z-score)
        img = img[..., 0] if modalities == 1 else img
        cid = f"tiny_{i:03d}"
        _nii(task / "imagesTr" / f"{cid}.nii.gz", img)
        _nii(task / "labelsTr" / f"{cid}.nii.gz", lab)
        training.append({"image": f"./imagesTr/{cid}.nii.gz", "label": f"./labelsTr/{cid}.nii.gz"})
    (task / "imagesTr" / "._tiny_000.nii.gz").write_bytes(b"macOS resource fork")  # as in the real tar
    names = ["FLAIR", "T1w", "T1gd", "T2w"]
    modality = {"0": "MRI"} if modalities == 1 else {str(m): names[m] for m in range(modalities)}
    meta = {
        "name": "Tiny",
        "modality": modality,
        "labels": {"0": "background", "1": "a", "2": "b"},
        "numTraining": n,
        "training": training,
    }
    (task / "dataset.json").write_text(json.dumps(meta))
    return root


def run_prepare(fmt: str, source: Path, out: Path, *extra: str, size: int = 16) -> int:
    """``jointseg prepare --format fmt`` of ``source`` into ``out`` at ``size`` px; the exit code."""
    return cli(["prepare", "--format", fmt, "--source", str(source), "--out", str(out), "--size", str(size), *extra])


def assert_failed_cleanly(rc: int, capsys, out: Path, *names: str) -> None:
    """A failed prepare: exit code 2, every one of ``names`` in stderr, and nothing left at ``out``."""
    err = capsys.readouterr().err
    assert rc == 2, err
    for name in names:
        assert name in err, err
    assert not (out / "manifest.json").exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))  # no half-written folder left behind
