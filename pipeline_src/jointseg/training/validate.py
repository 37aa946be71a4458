"""Validation during training, and the choice of ``checkpoints/best.pt``.

The best checkpoint is chosen on the VALIDATION split only: the test split is
never looked at during training, so choosing ``best.pt`` cannot leak test
information into the reported test scores. Validation tiles whole images /
volumes exactly as ``predict`` does (the shared
:func:`jointseg.inference.sliding_window.validation_dice`, under
``torch.inference_mode``).
"""

from __future__ import annotations

from . import checkpoint
from .build import Run

SPLIT = "val"


def validate_run(run: Run) -> float:
    """Validation Dice of ``run`` now; on a new best, record it and save ``best.pt``."""
    from ..inference.sliding_window import validation_dice

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
