"""Compatibility alias of :mod:`jointseg.training.checkpoint`.

Temporary: remove once ``tests/test_paper_path.py`` imports from ``jointseg.training.checkpoint``.
"""

from .training.checkpoint import (load_checkpoint, model_from_checkpoint, rng_state,  # noqa: F401
                                  save_checkpoint, set_rng_state)
