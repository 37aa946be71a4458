"""Loading a checkpoint and rebuilding its network: shared by training (resume), inference,
evaluation (attention statistics) and reporting, so it lives below every stage.

Writing checkpoints (and their layout, docs/design.md) is training's: ``training.checkpoint``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..io_utils import UserError
from . import build_model


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only``: no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; train first ('jointseg train') or fix the path")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: not a usable checkpoint
        raise UserError(
            f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc}); the file is "
            "truncated or not a jointseg checkpoint - retrain or restore it"
        ) from None
    missing = (
        [k for k in ("model", "model_kwargs", "preprocess") if k not in ckpt] if isinstance(ckpt, dict) else ["model"]
    )
    if missing:
        raise UserError(
            f"{path}: not a jointseg checkpoint (missing {missing}); use a file from "
            "results/<dataset>/<variant>/seed<k>/checkpoints/"
        )
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], device: torch.device | str = "cpu") -> torch.nn.Module:
    """Rebuild the network of ``ckpt`` with ``build_model(**model_kwargs)`` and load its weights."""
    kwargs = dict(ckpt["model_kwargs"])
    kwargs["input_size"] = tuple(kwargs["input_size"])
    model = build_model(**kwargs)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()
