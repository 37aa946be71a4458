"""Compatibility alias of :mod:`jointseg.training.losses`.

Temporary: remove once ``bench/bench_training.py`` and ``bench/bench_paper_step.py`` import from
``jointseg.training.losses``.
"""

from .training.losses import CEDiceLoss, CELoss, build_loss  # noqa: F401
