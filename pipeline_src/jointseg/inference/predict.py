"""``jointseg predict``: segment images (PNG/JPEG) or NIfTI volumes of any size with a checkpoint.

    jointseg predict --checkpoint results/D/V/seed0/checkpoints/best.pt \\
        --input data/prepared/D/KEY/test/images --out results/D/V/seed0/predictions

(``--output`` is still accepted for ``--out``.) Each case is preprocessed
exactly as in training (``preprocess_file`` with the checkpoint's
``preprocess`` spec), segmented by the sliding window (:mod:`jointseg.models.sliding_window`)
and mapped back onto its original grid (``restore``), under the precision the
checkpoint was trained with (``train.amp``; an fp16 checkpoint runs in fp32 off
CUDA). A case is one file, or
for checkpoints trained on nnU-Net data the channel files
``<case>_0000<ending>``, ``<case>_0001<ending>`` ... (:mod:`.inputs`; every
channel normalised on its own, as in training). Outputs, written atomically:

* 2-D: ``<case id>.png``, class indices 0..K-1 as uint8, the input's height and width;
* 3-D: ``<case id>.nii.gz``, the input's shape, affine, header and orientation, uint8;
* with ``--probabilities``: ``probabilities/<case id>_prob.npy`` (2-D, ``(K, h, w)``
  float32) or ``probabilities/<case id>_prob.nii.gz`` (3-D, 4-D float32 NIfTI, class
  as the last axis). A subfolder, so that ``jointseg evaluate --pred DIR`` sees only
  label files.
"""

from __future__ import annotations

import gzip
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from tqdm import tqdm

from ..data.preprocess import preprocess_file, restore, save_prediction
from ..device import resolve_threads, select_device, select_precision, set_threads
from ..io_utils import UserError, atomic_path, atomic_save_npy
from ..models.checkpoint import load_checkpoint, model_from_checkpoint
from ..models.sliding_window import sliding_probabilities
from .inputs import case_id, group_cases, list_inputs  # noqa: F401 (case_id: public here too)


def _save_probabilities(probs: np.ndarray, inverse, out_dir: Path, cid: str) -> Path:
    if inverse.ndim == 2:
        path = out_dir / f"{cid}_prob.npy"
        atomic_save_npy(path, probs.astype(np.float32))
        return path
    path = out_dir / f"{cid}_prob.nii.gz"
    data = np.moveaxis(probs.astype(np.float32), 0, -1)  # (X, Y, Z, K): NIfTI's 4th axis
    img = nib.Nifti1Image(data, inverse.affine)
    img.set_qform(inverse.affine, code=1)
    img.set_sform(inverse.affine, code=1)
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))
    return path


def predict_files(
    checkpoint: str | Path,
    inputs: list[Path],
    output: str | Path,
    probabilities: bool = False,
    overlap: float = 0.25,
    device_spec: str = "auto",
    threads: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Segment ``inputs`` (files; channel files are grouped into cases) with ``checkpoint``.

    Returns the written label files, one per case.
    """
    if not 0 <= overlap < 1:
        raise UserError(f"--overlap {overlap}: must be in [0, 1)")
    device = select_device(device_spec)
    old_threads = torch.get_num_threads()
    set_threads(resolve_threads(threads))
    try:
        return _predict(checkpoint, inputs, Path(output), probabilities, overlap, device, progress)
    finally:
        torch.set_num_threads(old_threads)


def _segment(model, paths: list[Path], spec: dict, roi, device, precision, overlap: float):
    """Labels on the original grid, probabilities (if already restored, else ``None``) and the inverse."""
    ndim = int(spec["ndim"])
    array, inverse = preprocess_file(paths if spec.get("channel_files") else paths[0], spec)
    batch = array[None] if ndim == 2 else array
    probs = sliding_probabilities(model, batch, roi, device, precision, overlap=overlap).numpy()
    # prepared geometry: 2-D (K, H, W); 3-D (K, S, H', W')
    probs = probs[0] if ndim == 2 else np.moveaxis(probs, 1, 0)
    if ndim == 2:  # resize the probabilities (bilinear), then argmax: smooth edges at full size
        full = restore(probs.astype(np.float32), inverse)
        return full.argmax(0).astype(np.uint8), full, probs, inverse
    # 3-D restore is exact (crop, unslice, reorient): argmax commutes with it
    return restore(probs.argmax(0).astype(np.uint8), inverse), None, probs, inverse


def _check_kind(paths: list[Path], ndim: int) -> None:
    for path in paths:
        if path.name.lower().endswith((".nii", ".nii.gz")) != (ndim == 3):
            raise UserError(
                f"{path}: this checkpoint was trained on {ndim}-D data "
                f"({'NIfTI volumes' if ndim == 3 else 'PNG/JPEG images'}); give matching files"
            )


def _predict(
    checkpoint, inputs, out_dir: Path, probabilities: bool, overlap: float, device, progress: bool
) -> list[Path]:
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    model = model_from_checkpoint(ckpt, device)
    cfg_train = ckpt.get("config", {}).get("train", {})
    amp = cfg_train.get("amp", "auto")
    if amp == "fp16" and device.type != "cuda":  # fp16 is a GPU's training choice: fp32 here
        amp = "off"
    precision = select_precision(device, amp, cfg_train.get("channels_last", "auto"))
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    roi = tuple(int(s) for s in ckpt["model_kwargs"]["input_size"])
    spec = ckpt["preprocess"]
    ndim = int(spec["ndim"])
    for _cid, paths in group_cases(list(inputs), spec):
        _check_kind(paths, ndim)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, started = [], time.perf_counter()
    for cid, paths in tqdm(
        group_cases(list(inputs), spec),
        desc="predict",
        unit="case",
        file=sys.stderr,
        disable=not progress,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
    ):
        labels, full, probs, inverse = _segment(model, paths, spec, roi, device, precision, overlap)
        target = out_dir / (f"{cid}.png" if ndim == 2 else f"{cid}.nii.gz")
        written.append(save_prediction(labels, inverse, target))
        if probabilities:
            full = restore(probs.astype(np.float32), inverse) if full is None else full
            _save_probabilities(full, inverse, out_dir / "probabilities", cid)
    # the loop's own time, for bench/demo_breakdown.py (start-up and loading are outside it)
    print(f"predict loop: {len(written)} case(s) in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return written
