"""Moved to :mod:`jointseg.inference.predict` (and :mod:`jointseg.inference.sliding_window`).

Kept only so that ``from ..predict import case_dice, sliding_probabilities`` in
``training/validate.py`` (and ``train_loop.py``) works until those imports point
at the new modules; delete this file then.
"""

from .inference.predict import case_id, list_inputs, predict_files  # noqa: F401
from .inference.sliding_window import case_dice, sliding_probabilities  # noqa: F401
