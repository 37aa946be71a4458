"""``jointseg predict``: segment images (PNG/JPEG) or NIfTI volumes of any size with a checkpoint.

    jointseg predict --checkpoint results/D/V/seed0/checkpoints/best.pt \
        --input data/prepared/D/test/images --output results/D/V/seed0/predictions

Each file is preprocessed exactly as in training (``preprocess_file`` with the
checkpoint's ``preprocess`` spec), segmented, and mapped back onto its original
grid (``restore``). Outputs, written atomically:

* 2-D: ``<case id>.png``, class indices 0..K-1 as uint8, the input's height and width;
* 3-D: ``<case id>.nii.gz``, the input's shape, affine, header and orientation, uint8;
* with ``--probabilities``: ``probabilities/<case id>_prob.npy`` (2-D, ``(K, h, w)``
  float32) or ``probabilities/<case id>_prob.nii.gz`` (3-D, 4-D float32 NIfTI, class
  as the last axis). A subfolder, so that ``jointseg evaluate --pred DIR`` sees only
  label files.

Resolution rule: the attention block is built for one feature size, so the
network only ever sees windows of exactly its training ``input_size``. Larger
images/slices are tiled with MONAI's ``sliding_window_inference`` (Gaussian
blending, ``--overlap`` between windows); smaller ones are padded and cropped back.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np

from .io_utils import UserError, atomic_path, atomic_save_npy

SUFFIXES = (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def case_id(path: str | Path) -> str:
    """File name without its (possibly double, ``.nii.gz``) extension."""
    name = Path(path).name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def list_inputs(path: str | Path) -> list[Path]:
    """One file, or the supported files of a folder (sorted); clear errors otherwise."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path}: input not found; give an image/NIfTI file or a folder of them")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(SUFFIXES)
                   and not p.name.startswith("."))
    if not files:
        raise UserError(f"{path}: no PNG/JPEG/NIfTI files in this folder (looked for {', '.join(SUFFIXES)})")
    return files


def sliding_probabilities(model, array, roi, device, precision=None, overlap: float = 0.25,
                          sw_batch_size: int = 8, chunk: int = 32):
    """Softmax probabilities ``(N, K, H, W)`` (float32, CPU tensor) of ``array`` ``(N, C, H, W)``.

    ``N`` is 1 for a 2-D image and the slice count for a volume; slices go
    through the network ``chunk`` at a time so memory stays bounded. Used by
    validation during training too, so validation sees what ``predict`` does.
    """
    import torch
    from monai.inferers import sliding_window_inference

    x_all = array if isinstance(array, torch.Tensor) else torch.as_tensor(np.asarray(array))
    if x_all.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {tuple(x_all.shape)}")
    dtype = precision.dtype if precision is not None else None
    channels_last = bool(precision is not None and precision.channels_last)

    def predictor(window):
        if channels_last:
            window = window.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return model(window).float()

    outs = []
    with torch.no_grad():
        for start in range(0, x_all.shape[0], chunk):
            x = x_all[start:start + chunk].to(device, dtype=torch.float32)
            logits = sliding_window_inference(x, roi_size=tuple(int(r) for r in roi), sw_batch_size=sw_batch_size,
                                              predictor=predictor, overlap=overlap, mode="gaussian",
                                              padding_mode="constant", cval=0.0)
            outs.append(torch.softmax(torch.as_tensor(logits).float(), dim=1).cpu())
    return torch.cat(outs)


def case_dice(pred, label, num_classes: int) -> np.ndarray:
    """Foreground Dice per class of one case (2-D image or 3-D volume of class indices).

    MONAI ``compute_dice`` with ``ignore_empty=False``: both empty -> 1, the
    project's metric policy.
    """
    import torch
    from monai.metrics import compute_dice
    from monai.networks.utils import one_hot

    p = torch.as_tensor(np.asarray(pred), dtype=torch.int64)[None, None]
    g = torch.as_tensor(np.asarray(label), dtype=torch.int64)[None, None]
    dice = compute_dice(one_hot(p, num_classes, dim=1), one_hot(g, num_classes, dim=1),
                        include_background=False, ignore_empty=False)
    return dice[0].numpy()


def _save_probabilities(probs: np.ndarray, inverse, out_dir: Path, cid: str) -> Path:
    if inverse.ndim == 2:
        path = out_dir / f"{cid}_prob.npy"
        atomic_save_npy(path, probs.astype(np.float32))
        return path
    import nibabel as nib

    path = out_dir / f"{cid}_prob.nii.gz"
    data = np.moveaxis(probs.astype(np.float32), 0, -1)  # (X, Y, Z, K): NIfTI's 4th axis
    img = nib.Nifti1Image(data, inverse.affine)
    img.set_qform(inverse.affine, code=1)
    img.set_sform(inverse.affine, code=1)
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))
    return path


def predict_files(checkpoint: str | Path, inputs: list[Path], output: str | Path, probabilities: bool = False,
                  overlap: float = 0.25, device_spec: str = "auto", threads: int | None = None,
                  progress: bool = True) -> list[Path]:
    """Segment ``inputs`` with ``checkpoint``; return the written label files."""
    import torch

    from .device import resolve_threads, select_device, set_threads

    if not 0 <= overlap < 1:
        raise UserError(f"--overlap {overlap}: must be in [0, 1)")
    device = select_device(device_spec)
    old_threads = torch.get_num_threads()
    set_threads(resolve_threads(threads))
    try:
        return _predict(checkpoint, inputs, Path(output), probabilities, overlap, device, progress)
    finally:
        torch.set_num_threads(old_threads)


def _predict(checkpoint, inputs, out_dir: Path, probabilities: bool, overlap: float, device,
             progress: bool) -> list[Path]:
    import torch
    from tqdm import tqdm

    from .checkpoint import load_checkpoint, model_from_checkpoint
    from .data.preprocess import preprocess_file, restore, save_prediction
    from .device import select_precision

    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    model = model_from_checkpoint(ckpt, device)
    cfg_train = ckpt.get("config", {}).get("train", {})
    precision = select_precision(device, cfg_train.get("amp", "auto"), cfg_train.get("channels_last", "auto"))
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    roi = tuple(int(s) for s in ckpt["model_kwargs"]["input_size"])
    spec = ckpt["preprocess"]
    ndim = int(spec["ndim"])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(inputs, desc="predict", unit="case", file=sys.stderr, disable=not progress,
                     mininterval=0.5 if sys.stderr.isatty() else 30.0):
        is_nifti = path.name.lower().endswith((".nii", ".nii.gz"))
        if is_nifti != (ndim == 3):
            raise UserError(f"{path}: this checkpoint was trained on {ndim}-D data "
                            f"({'NIfTI volumes' if ndim == 3 else 'PNG/JPEG images'}); give matching files")
        array, inverse = preprocess_file(path, spec)
        batch = array[None] if ndim == 2 else array
        probs = sliding_probabilities(model, batch, roi, device, precision, overlap=overlap).numpy()
        # prepared geometry: 2-D (K, H, W); 3-D (K, S, H', W')
        probs = probs[0] if ndim == 2 else np.moveaxis(probs, 1, 0)
        cid = case_id(path)
        if ndim == 2:  # resize the probabilities (bilinear), then argmax: smooth edges at full size
            full = restore(probs.astype(np.float32), inverse)
            labels = full.argmax(0).astype(np.uint8)
        else:  # 3-D restore is exact (crop, unslice, reorient): argmax commutes with it
            full = None
            labels = restore(probs.argmax(0).astype(np.uint8), inverse)
        target = out_dir / (f"{cid}.png" if ndim == 2 else f"{cid}.nii.gz")
        written.append(save_prediction(labels, inverse, target))
        if probabilities:
            full = restore(probs.astype(np.float32), inverse) if full is None else full
            _save_probabilities(full, inverse, out_dir / "probabilities", cid)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint (.pt) written by 'jointseg train'")
    parser.add_argument("--input", required=True, help="an image/NIfTI file or a folder of them")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--probabilities", action="store_true", help="also write class probabilities")
    parser.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap (default 0.25)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")


def main(args: argparse.Namespace) -> int:
    files = list_inputs(args.input)
    written = predict_files(args.checkpoint, files, args.output, args.probabilities, args.overlap,
                            args.device, args.threads, progress=not args.no_progress)
    print(f"{args.output}: {len(written)} prediction(s) written", file=sys.stderr)
    return 0
