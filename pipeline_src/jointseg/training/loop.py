"""The training loop of one (data set, variant, seed): resumable, deterministic on CPU.

Output folder ``OUT`` (``results/<dataset>/<variant>/seed<k>``)::

    checkpoints/latest.pt   every ``train.checkpoint_every`` iterations (resume point)
    checkpoints/best.pt     whenever the validation Dice improves (validation split only); a hard
                            link to best.kept.pt, which survives Snakemake's deletion of best.pt
    checkpoints/final.pt    after the last iteration
    history.csv             step,loss,lr,val_dice,seconds (rewritten atomically)
    train_done.json         written last: its presence means "finished"

Stages: :func:`~jointseg.training.build.build` (network, optimiser, schedule,
loss, data), :func:`~jointseg.training.resume.resume` (from ``latest.pt``),
:func:`step` per iteration, :func:`~jointseg.training.validate.validate_run`
every ``train.val_every`` iterations, :func:`finish`.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..device import resolve_threads, runtime_settings, select_device
from ..io_utils import UserError, atomic_write_json
from ..tracking import RunTracker
from . import checkpoint
from .batches import iterate_batches
from .build import Run, build
from .resume import finished, resume
from .state import write_history
from .validate import validate_run


class TrainingDiverged(UserError):
    """The loss became NaN/inf."""


class Stopped(UserError):
    """SIGTERM arrived; ``latest.pt`` was saved."""


class _StopFlag:
    """SIGTERM (Slurm pre-emption, Snakemake cancel): save ``latest`` and exit cleanly."""

    def __init__(self) -> None:
        self.stop = False
        self._old = None

    def __enter__(self) -> "_StopFlag":
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        self.stop = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def train(
    run_config: dict,
    out_dir: str | Path,
    device_spec: str = "auto",
    threads: int | None = None,
    restart: bool = False,
    tracking: bool = True,
    progress: bool = True,
) -> dict:
    """Train (or resume) one run; returns the content of ``train_done.json``.

    ``run_config``: schema-filled (``jointseg resolve`` / ``config.resolve_run``).
    ``threads``: explicit > ``train.threads`` > ``$SNAKEMAKE_THREADS`` / ``$OMP_NUM_THREADS``
    > all usable CPUs. ``tracking``: log an MLflow child run (see :mod:`jointseg.tracking`).
    """
    dev = select_device(device_spec)
    n_threads = resolve_threads(threads or run_config["train"]["threads"])
    with runtime_settings(n_threads, bool(run_config["deterministic"]), dev):
        return _train(run_config, Path(out_dir), dev, n_threads, restart, tracking, progress)


def _train(
    run_config: dict, out: Path, device: torch.device, n_threads: int, restart: bool, tracking: bool, progress: bool
) -> dict:
    done = finished(out, int(run_config["train"]["iterations"]), restart)
    if done is not None:
        return done
    run = build(run_config, out, device)
    resume(run, restart)
    if not (out / "run_config.json").is_file():  # a record of what this folder was trained with
        atomic_write_json(out / "run_config.json", run_config)
    tracker = _open_tracker(run, n_threads, tracking)
    if tracker.run_id and not (run.ckpt_dir / "latest.pt").is_file():
        # the resume point of step 0 records the MLflow run: a kill before the first periodic
        # checkpoint continues this run on the rerun instead of leaving it KILLED beside a new one
        save_latest(run, tracker)
    try:
        with _StopFlag() as stop:
            _iterate(run, tracker, stop, progress)
    except (KeyboardInterrupt, Stopped):
        tracker.finish("KILLED")
        raise
    except Exception:
        tracker.finish("FAILED")  # the run shows as failed in MLflow; a rerun resumes it
        raise
    return finish(run, tracker, n_threads)


def _open_tracker(run: Run, n_threads: int, tracking: bool):
    """The MLflow child run (new, or the one ``latest.pt`` names); a no-op object when off."""
    tracker = RunTracker(run.config, run.out, enabled=tracking, resume_run_id=run.state.mlflow_run_id)
    run.state.mlflow_run_id = tracker.run_id
    if tracker.run_id and run.state.step == 0:
        tracker.log_text(json.dumps(run.config, indent=2, sort_keys=True), "run_config.json")
        tracker.set_tags(
            {
                "device": str(run.device),
                "precision": run.precision.name,
                "threads": str(n_threads),
                "deterministic": str(run.config["deterministic"]),
            }
        )
    # at every start: re-logging an equal value is allowed, and a run resumed from a
    # checkpoint of an older version gets it too
    tracker.log_params({"n_parameters": str(run.n_parameters)})
    return tracker


def step(run: Run, image: torch.Tensor, label: torch.Tensor) -> float:
    """One optimiser update (and schedule step) on one batch; returns the loss value."""
    device, precision = run.device, run.precision
    image = image.to(device, non_blocking=True)
    if precision.channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    label = label.to(device, dtype=torch.int64, non_blocking=True)
    with torch.autocast(device.type, dtype=precision.dtype or torch.float32, enabled=precision.dtype is not None):
        logits = run.forward(image)
    loss = run.loss_fn(logits, label)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        run.optimizer.step()
    run.scheduler.step()
    return float(loss.detach())


def save_latest(run: Run, tracker) -> None:
    """Save the resume point ``latest.pt`` and ``history.csv``."""
    tracker.flush()  # before the checkpoint: on a kill, metrics are re-sent, never lost
    checkpoint.save_checkpoint(run.ckpt_dir / "latest.pt", run.payload("latest"))
    write_history(run.out / "history.csv", run.state.history)


def _iterate(run: Run, tracker, stop: _StopFlag, progress: bool) -> None:
    """Iterations ``state.step .. train.iterations - 1``, validating and checkpointing on schedule."""
    tr, state = run.config["train"], run.state
    val_every, ckpt_every = int(tr["val_every"]), int(tr["checkpoint_every"])
    bar = _progress(run, progress)
    run.model.train()
    t_last = time.perf_counter()
    try:
        for t, (image, label) in iterate_batches(
            run.batches, state.step, run.iterations, int(tr["workers"]), run.device
        ):
            lr = run.optimizer.param_groups[0]["lr"]  # the lr this update uses
            loss = step(run, image, label)
            if not math.isfinite(loss) and run.scaler is None:  # fp16: the scaler skips such steps
                raise TrainingDiverged(
                    f"{run.out}: loss became {loss} at iteration {t + 1}; lower train.lr "
                    f"(now {tr['lr']}) or set train.amp: off, then rerun with --restart"
                )
            state.step = t + 1
            now = time.perf_counter()
            state.seconds += now - t_last
            t_last = now
            dice = None
            if state.step % val_every == 0 or state.step == run.iterations:
                dice = validate_run(run)
                t_last = time.perf_counter()  # validation time is not training time
                state.validation_seconds += t_last - now
            state.history.append([state.step, loss, lr, dice, state.seconds])
            tracker.log_metrics({"loss": loss, "lr": lr, "val_dice": dice}, state.step)
            if state.step % ckpt_every == 0 or state.step == run.iterations or stop.stop:
                save_latest(run, tracker)
            bar.update(1)
            bar.set_postfix(
                loss=f"{loss:.4f}", refresh=False, dice="-" if state.last_dice is None else f"{state.last_dice:.3f}"
            )
            if stop.stop:
                raise Stopped(
                    f"{run.out}: stopped by SIGTERM at iteration {state.step}; latest.pt saved - "
                    "rerun the same command to resume"
                )
    finally:
        bar.close()


def finish(run: Run, tracker, n_threads: int) -> dict:
    """Save ``best.pt`` (if missing) and ``final.pt``, close the MLflow run, write ``train_done.json``."""
    state, ckpt_dir, tr = run.state, run.ckpt_dir, run.config["train"]
    if state.step < run.iterations:  # nothing ran (already at the end) is fine; fewer is a bug
        raise RuntimeError(f"training stopped at {state.step} of {run.iterations} iterations")
    # Snakemake deleted best.pt before a rerun: publish the kept best again, never the final weights
    if not (ckpt_dir / checkpoint.BEST).is_file() and checkpoint.publish_best(ckpt_dir) is None:
        checkpoint.save_best(ckpt_dir, run.payload("best"))  # a folder of an older version: no kept copy
    checkpoint.save_checkpoint(ckpt_dir / "final.pt", run.payload("final"))
    write_history(run.out / "history.csv", state.history)
    rc = run.config
    done = {
        "dataset": rc["dataset"],
        "variant": rc["variant"],
        "seed": int(rc["seed"]),
        "iterations": run.iterations,
        "step": state.step,
        "best_val_dice": state.best_dice,
        "best_step": state.best_step,
        "final_val_dice": state.last_dice,
        "seconds": round(state.seconds, 3),
        "validation_seconds": round(state.validation_seconds, 3),
        "images_per_second": round(run.iterations * int(tr["batch_size"]) / max(state.seconds, 1e-9), 3),
        "n_parameters": run.n_parameters,
        "device": str(run.device),
        "precision": run.precision.name,
        "threads": n_threads,
        "deterministic": bool(rc["deterministic"]),
        "mlflow_run_id": tracker.run_id,
    }
    if tracker.run_id:
        _log_final(run, tracker)
    atomic_write_json(run.out / "train_done.json", done)  # last: Snakemake's sign of completion
    return done


def _log_final(run: Run, tracker) -> None:
    """Final metrics, history, checkpoints and the model itself to the MLflow run; close it."""
    state = run.state
    tracker.log_metrics({"best_val_dice": state.best_dice, "train_seconds": state.seconds}, state.step)
    tracker.log_artifact(run.out / "history.csv")
    tracker.log_artifact(run.ckpt_dir / "best.pt", "checkpoints")
    tracker.log_artifact(run.ckpt_dir / "final.pt", "checkpoints")
    example = np.zeros((1, run.model_kwargs["in_channels"], *run.model_kwargs["input_size"]), np.float32)
    model = run.model.eval()
    if run.device.type != "cpu" or run.precision.channels_last:  # log the plain NCHW CPU model
        model = model.to(memory_format=torch.contiguous_format).cpu()
    tracker.log_model(model, example)
    tracker.set_tags({"best_step": str(state.best_step)})
    tracker.finish("FINISHED")


def _progress(run: Run, enabled: bool):
    rc, tty = run.config, sys.stderr.isatty()
    return tqdm(
        total=run.iterations,
        initial=run.state.step,
        file=sys.stderr,
        unit="it",
        desc=f"train {rc['dataset']}/{rc['variant']}/seed{rc['seed']}",
        disable=not enabled,
        dynamic_ncols=tty,
        mininterval=0.5 if tty else 30.0,
    )  # logs (Snakemake, Slurm): a line per 30 s
