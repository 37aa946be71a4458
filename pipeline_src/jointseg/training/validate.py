"""Validation during training, and the choice of ``checkpoints/best.pt``.

The best checkpoint is chosen on the VALIDATION split only: the test split is
never looked at during training, so choosing ``best.pt`` cannot leak test
information into the reported test scores. Validation tiles whole images /
volumes exactly as ``predict`` does (the shared sliding window,
:func:`jointseg.models.sliding_window.sliding_probabilities`, under
``torch.inference_mode``) and scores them with the evaluation's Dice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.loader import eval_cases
from ..evaluation.metrics import case_dice
from ..io_utils import UserError
from ..models.sliding_window import sliding_probabilities
from . import checkpoint
from .build import Run

SPLIT = "val"


def validation_dice(
    model, prepared_dir: str | Path, size: tuple[int, int], num_classes: int, device, precision=None, split: str = "val"
) -> float:
    """Mean foreground Dice over the cases of ``split`` (per case: mean over classes).

    Whole images / volumes of the prepared arrays, tiled at the training
    ``size`` exactly as ``predict`` tiles; the model is left in the mode it
    came in.
    """
    was_training = model.training
    model.eval()
    scores = []
    try:
        with torch.inference_mode():
            for _case_id, image, label in eval_cases(prepared_dir, split):
                image = np.asarray(image)
                batch = image[None] if image.ndim == 3 else image  # 2-D (1,C,H,W); 3-D slices (S,C,H',W')
                pred = sliding_probabilities(model, batch, size, device, precision).argmax(1).numpy()
                label = np.asarray(label).reshape(pred.shape)
                scores.append(float(np.mean(case_dice(pred, label, num_classes))))
    finally:
        model.train(was_training)
    if not scores:
        raise UserError(f"{prepared_dir}: the '{split}' split has no cases; check splits.json")
    return float(np.mean(scores))


def validate_run(run: Run) -> float:
    """Validation Dice of ``run`` now; on a new best, record it and save ``best.pt``."""
    rc = run.config
    dice = validation_dice(
        run.model,
        rc["prepared_dir"],
        tuple(rc["size"]),
        run.model_kwargs["num_classes"],
        run.device,
        run.precision,
        split=SPLIT,
    )
    state = run.state
    state.last_dice = dice
    if dice > state.best_dice:
        state.best_dice, state.best_step = dice, state.step
        checkpoint.save_best(run.ckpt_dir, run.payload("best"))
    return dice
