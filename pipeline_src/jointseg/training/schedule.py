"""Optimiser and learning-rate schedule of one training run.

Adam with ``train.lr``, ``train.betas`` and ``train.weight_decay`` (the
author's earlier DenseUNet code: lr 1e-3, betas (0.9, 0.99)). The schedule
``train.scheduler`` is stepped once per iteration ``t`` of ``T = train.iterations``:

- ``poly``: ``lr * (1 - t/T) ** 0.9``, torch's ``PolynomialLR`` (the "poly"
  policy of DeepLab / PSPNet-era segmentation code);
- ``cosine``: ``CosineAnnealingLR`` over ``T``;
- ``constant``: ``lr`` at every iteration.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, PolynomialLR

from ..io_utils import UserError

POLY_POWER = 0.9
SCHEDULERS = ("constant", "poly", "cosine")


def build_optimizer(model: torch.nn.Module, train: dict, device: torch.device) -> torch.optim.Adam:
    """Adam over the model's parameters with the run's ``train`` settings."""
    # fused Adam: one kernel for all parameters (about 30 % less time per step on a CPU for
    # the small preset, where hundreds of tiny tensors made the per-tensor loop expensive)
    return torch.optim.Adam(
        model.parameters(),
        lr=float(train["lr"]),
        betas=tuple(train["betas"]),
        weight_decay=float(train["weight_decay"]),
        fused=device.type in ("cpu", "cuda"),
    )


def _unit(step: int) -> float:  # noqa: ARG001 - LambdaLR's signature
    return 1.0


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, total: int) -> LRScheduler:
    """The schedule ``name`` (``constant``, ``poly`` or ``cosine``) over ``total`` iterations."""
    if name == "poly":
        return PolynomialLR(optimizer, total_iters=int(total), power=POLY_POWER)
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=int(total))
    if name == "constant":
        # base lr times exactly 1.0: the lr never moves, not even by rounding
        return LambdaLR(optimizer, _unit)
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def _from_poly_lambda(scheduler: PolynomialLR, state: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``PolynomialLR`` state from the ``LambdaLR`` state that older versions saved for ``poly``.

    Both keep the current lr in the optimiser (restored with it) and count steps in
    ``last_epoch``, so only the lambda's parameters need checking and dropping.
    """
    expected = {"total": scheduler.total_iters, "power": scheduler.power}
    if any(fn != expected for fn in state["lr_lambdas"]):
        raise UserError(
            f"{where}: its poly schedule {state['lr_lambdas']} does not match this run's "
            f"{expected}; rerun with --restart to train from scratch"
        )
    converted = {k: v for k, v in state.items() if k != "lr_lambdas"}
    return {**converted, "total_iters": scheduler.total_iters, "power": scheduler.power}


def load_scheduler_state(scheduler: LRScheduler, state: dict[str, Any], where: str) -> None:
    """Restore ``state`` into ``scheduler``; a state of another kind of schedule is a
    :class:`UserError` naming ``where`` (the checkpoint) instead of a silent mix."""
    if isinstance(scheduler, PolynomialLR) and "lr_lambdas" in state:
        state = _from_poly_lambda(scheduler, state, where)
    # public keys only: private ones (``_is_initial``, ...) come and go with torch versions
    missing = sorted(k for k in scheduler.state_dict() if not k.startswith("_") and k not in state)
    if missing:
        raise UserError(
            f"{where}: its scheduler state lacks {missing} for a {type(scheduler).__name__}; "
            "it was written by another schedule or version - rerun with --restart"
        )
    scheduler.load_state_dict(state)
