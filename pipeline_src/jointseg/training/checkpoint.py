"""Checkpoints: atomic save, safe load, RNG state capture.

Layout (docs/design.md): ``model`` (state dict), ``model_kwargs`` (for
``build_model``), ``preprocess`` (the manifest's spec), ``labels``, ``step``
(completed iterations), ``optimizer``, ``scheduler``, ``rng``, ``config``; plus
``scaler`` (fp16 GradScaler), ``best`` (best validation Dice and its step),
``history`` (rows of history.csv so far), ``seconds`` (training time so far),
``mlflow_run_id``, ``kind`` (latest, best or final).

Everything is stored as tensors and plain Python types so that checkpoints load
with ``torch.load(weights_only=True)``: loading a checkpoint never executes code.

``best.pt`` is a Snakemake output, which Snakemake deletes before it reruns the
training (``--forcerun``, a changed param). The best weights therefore live in
``best.kept.pt``, which no rule names, and ``best.pt`` is a hard link to it (a
copy where the file system has no hard links): a rerun that resumes at the last
step publishes the same best checkpoint again instead of the final weights.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io_utils import atomic_path


def rng_state() -> dict[str, Any]:
    """The state of every random generator training touches (python, numpy, torch CPU/CUDA)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary name, then rename: a kill never leaves a torn checkpoint."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


BEST = "best.pt"
BEST_KEPT = "best.kept.pt"  # the training's own copy of the best checkpoint (no Snakemake output)


def save_best(ckpt_dir: Path, payload: dict[str, Any]) -> Path:
    """Save a new best checkpoint as ``best.kept.pt`` and publish it as ``best.pt``."""
    save_checkpoint(ckpt_dir / BEST_KEPT, payload)
    return publish_best(ckpt_dir)


def publish_best(ckpt_dir: Path) -> Path | None:
    """(Re)create ``best.pt`` from ``best.kept.pt`` (hard link, else copy); None without a kept copy."""
    kept, best = ckpt_dir / BEST_KEPT, ckpt_dir / BEST
    if not kept.is_file():
        return None
    with atomic_path(best) as tmp:
        tmp.unlink(missing_ok=True)
        try:
            os.link(kept, tmp)
        except OSError:  # no hard links here (some network or FUSE file systems)
            shutil.copyfile(kept, tmp)
    os.utime(best)  # now: a republished best.pt is not older than the inputs of its rerun
    return best
