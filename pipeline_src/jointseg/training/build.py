"""Build everything one training run holds: network, optimiser, schedule, loss, data.

The run config is schema-filled (``jointseg resolve`` / :func:`jointseg.config.resolve_run`),
so every setting is read as ``run_config["train"][key]``: the defaults live in the
schema only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..data.loader import TrainBatches, read_manifest
from ..device import Precision, compile_model, seed_everything, select_precision
from ..models import build_model, count_parameters, model_kwargs
from . import checkpoint
from .losses import build_loss
from .schedule import build_optimizer, build_scheduler
from .state import TrainState

# fp16's GradScaler starts at PyTorch's default scale and halves it on every step whose
# gradients overflow (that step is skipped), so a large network may skip its first few steps
GRAD_SCALE_INIT = 2.0**16


@dataclass
class Run:
    """One training run: its settings, output folder and live training objects."""

    config: dict
    out: Path
    device: torch.device
    precision: Precision
    manifest: dict
    model_kwargs: dict
    model: torch.nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]  # the model, or its torch.compile wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    loss_fn: torch.nn.Module
    batches: Any  # jointseg.data.loader.TrainBatches
    n_parameters: int
    state: TrainState = field(default_factory=TrainState)

    @property
    def ckpt_dir(self) -> Path:
        """``OUT/checkpoints``."""
        return self.out / "checkpoints"

    @property
    def iterations(self) -> int:
        """``train.iterations``: the run's length."""
        return int(self.config["train"]["iterations"])

    def payload(self, kind: str) -> dict[str, Any]:
        """The checkpoint of the current state (``kind``: latest, best or final)."""
        labels = self.manifest["labels"] if "labels" in self.manifest else self.config["labels"]
        return {
            "model": self.model.state_dict(),
            "model_kwargs": self.model_kwargs,
            "preprocess": self.manifest["preprocess"],
            "labels": labels,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": checkpoint.rng_state(),
            "config": self.config,
            **self.state.checkpoint_fields(),
            "kind": kind,
        }


def build(run_config: dict, out: Path, device: torch.device) -> Run:
    """A freshly initialised run (seeded): weights, optimiser and schedule at step 0."""
    tr = run_config["train"]
    manifest = read_manifest(run_config["prepared_dir"])
    precision = select_precision(device, tr["amp"], tr["channels_last"])
    seed = int(run_config["seed"])
    seed_everything(seed)  # before build_model: the initial weights come from this seed

    kwargs = model_kwargs(run_config, manifest)
    model = build_model(**{**kwargs, "input_size": tuple(kwargs["input_size"])}).to(device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, tr, device)
    scheduler = build_scheduler(tr["scheduler"], optimizer, int(tr["iterations"]))
    batches = TrainBatches(
        run_config["prepared_dir"], "train", int(tr["batch_size"]), tuple(run_config["size"]), tr["augment"], seed
    )
    return Run(
        config=run_config,
        out=out,
        device=device,
        precision=precision,
        manifest=manifest,
        model_kwargs=kwargs,
        model=model,
        forward=compile_model(model) if tr["compile"] and device.type == "cuda" else model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(device.type, init_scale=GRAD_SCALE_INIT) if precision.scaler else None,
        loss_fn=build_loss(tr["loss"]),
        batches=batches,
        n_parameters=count_parameters(model),
    )
