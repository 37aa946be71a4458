"""The training loop of one (data set, variant, seed): resumable, deterministic on CPU.

Output folder ``OUT`` (``results/<dataset>/<variant>/seed<k>``)::

    checkpoints/latest.pt   every ``train.checkpoint_every`` iterations (resume point)
    checkpoints/best.pt     whenever the validation Dice improves
    checkpoints/final.pt    after the last iteration
    history.csv             step,loss,lr,val_dice,seconds (rewritten atomically)
    train_done.json         written last: its presence means "finished"

Resume: rerunning the same command after any interruption (``kill -9``
included) continues from ``latest.pt``: model, optimiser, scheduler, GradScaler,
RNG states (python, numpy, torch) and the iteration ``t``. The loader's batch
``t`` is a pure function of ``(seed, t)``, so on CPU in deterministic mode the
resumed run ends with bit-identical weights to an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.data

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .device import (Precision, resolve_threads, runtime_settings, seed_everything, select_device,
                     select_precision)
from .io_utils import UserError, atomic_write_json, atomic_write_text
from .losses import build_loss, build_scheduler

HISTORY_FIELDS = ("step", "loss", "lr", "val_dice", "seconds")
# Settings that may change between an interrupted run and its resumption.
RESUME_FREE_KEYS = {"threads", "workers", "checkpoint_every", "val_every", "compile"}


class TrainingDiverged(UserError):
    """The loss became NaN/inf."""


@dataclass
class TrainState:
    """Everything besides the tensors that a checkpoint carries."""

    step: int = 0
    seconds: float = 0.0
    best_dice: float = -1.0
    best_step: int = -1
    last_dice: float | None = None
    history: list[list[float | int | None]] = field(default_factory=list)
    mlflow_run_id: str | None = None


def read_manifest(prepared_dir: str | Path) -> dict:
    """The prepared data set's manifest (clear error if it is missing)."""
    path = Path(prepared_dir) / "manifest.json"
    if not path.is_file():
        raise UserError(f"{path}: prepared data not found; run 'jointseg prepare' for this data set "
                        "(or 'snakemake prepare') first")
    return json.loads(path.read_text())


def model_kwargs(run_config: dict, manifest: dict) -> dict:
    """Arguments of ``build_model`` for this run (stored in every checkpoint)."""
    m = run_config["model"]
    return {
        "arch": m.get("arch", "denseunet"),
        "preset": m.get("preset", "small"),
        "in_channels": int(manifest["in_channels"]),
        "num_classes": int(manifest["num_classes"]),
        "attention": m.get("attention", "joint"),
        "attention_level": m.get("attention_level", "bottleneck"),
        "input_size": [int(s) for s in run_config["size"]],
        "attention_options": dict(m.get("attention_options") or {}),
    }


def _comparable(rc: dict) -> dict:
    rc = json.loads(json.dumps(rc))
    rc.pop("mlflow", None)
    for key in RESUME_FREE_KEYS:
        rc.get("train", {}).pop(key, None)
    return rc


def _changed_keys(old: dict, new: dict) -> list[str]:
    from .tracking import flatten

    a, b = flatten(_comparable(old)), flatten(_comparable(new))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _write_history(path: Path, rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HISTORY_FIELDS)
    for step, loss, lr, dice, secs in rows:
        writer.writerow([step, f"{loss:.6g}", f"{lr:.6g}", "" if dice is None else f"{dice:.6f}", f"{secs:.2f}"])
    atomic_write_text(path, buf.getvalue())


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


def validate(model: torch.nn.Module, prepared_dir: str | Path, size: tuple[int, int], num_classes: int,
             device: torch.device, precision: Precision, split: str = "val") -> float:
    """Mean foreground Dice over the cases of ``split`` (per case: mean over classes).

    Whole images / volumes, tiled at the training size as ``predict`` does.
    """
    from .data.loader import eval_cases
    from .predict import case_dice, sliding_probabilities

    was_training = model.training
    model.eval()
    scores = []
    try:
        for _case_id, image, label in eval_cases(prepared_dir, split):
            image = np.asarray(image)
            batch = image[None] if image.ndim == 3 else image  # 2-D (1,C,H,W); 3-D slices (S,1,H',W')
            pred = sliding_probabilities(model, batch, size, device, precision).argmax(1).numpy()
            label = np.asarray(label).reshape(pred.shape)
            scores.append(float(np.mean(case_dice(pred, label, num_classes))))
    finally:
        model.train(was_training)
    if not scores:
        raise UserError(f"{prepared_dir}: the '{split}' split has no cases; check splits.json")
    return float(np.mean(scores))


def train(run_config: dict, out_dir: str | Path, device_spec: str = "auto", threads: int | None = None,
          restart: bool = False, tracking: bool = True, progress: bool = True) -> dict:
    """Train (or resume) one run; returns the content of ``train_done.json``.

    ``threads``: explicit > ``train.threads`` > ``$SNAKEMAKE_THREADS`` / ``$OMP_NUM_THREADS``
    > all usable CPUs. ``tracking``: log an MLflow child run (see :mod:`jointseg.tracking`).
    """
    dev = select_device(device_spec)
    n_threads = resolve_threads(threads or run_config["train"].get("threads"))
    with runtime_settings(n_threads, bool(run_config.get("deterministic", True)), dev):
        return _train(run_config, Path(out_dir), dev, n_threads, restart, tracking, progress)


def _train(run_config: dict, out: Path, device: torch.device, n_threads: int, restart: bool,
           tracking: bool, progress: bool) -> dict:
    ckpt_dir = out / "checkpoints"
    done_path = out / "train_done.json"
    tr = run_config["train"]
    iterations = int(tr["iterations"])

    if done_path.is_file() and not restart:
        done = json.loads(done_path.read_text())
        if done.get("iterations") == iterations and (ckpt_dir / "final.pt").is_file():
            print(f"{out}: already trained ({iterations} iterations); use --restart to train again",
                  file=sys.stderr)
            return done
    done_path.unlink(missing_ok=True)

    manifest = read_manifest(run_config["prepared_dir"])
    deterministic = bool(run_config.get("deterministic", True))
    precision = select_precision(device, tr.get("amp", "auto"), tr.get("channels_last", "auto"))
    seed = int(run_config["seed"])
    seed_everything(seed)

    from .data.loader import TrainBatches
    from .models import build_model

    kwargs = model_kwargs(run_config, manifest)
    model = build_model(**{**kwargs, "input_size": tuple(kwargs["input_size"])}).to(device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # fused Adam: one kernel for all parameters (about 30 % less time per step on a CPU for
    # the small preset, where hundreds of tiny tensors made the per-tensor loop expensive)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(tr["lr"]), betas=tuple(tr["betas"]),
                                 weight_decay=float(tr.get("weight_decay", 0.0)),
                                 fused=device.type in ("cpu", "cuda"))
    scheduler = build_scheduler(tr.get("scheduler", "poly"), optimizer, iterations)
    scaler = torch.amp.GradScaler(device.type) if precision.scaler else None
    loss_fn = build_loss(tr.get("loss", "ce_dice"))
    state = TrainState()

    latest = ckpt_dir / "latest.pt"
    ckpt = load_checkpoint(latest, map_location="cpu") if latest.is_file() and not restart else None
    if ckpt is not None and _comparable(ckpt.get("config", {})) != _comparable(run_config):
        # Snakemake reruns a training whose run_config.json changed: that is a new run, not a
        # continuation. Keep the old state under another name instead of deleting it.
        changed = _changed_keys(ckpt.get("config", {}), run_config)
        stale = latest.with_name("latest.stale.pt")
        latest.replace(stale)
        print(f"{out}: {latest.name} was trained with other settings ({', '.join(changed[:8])}); "
              f"moved to {stale.name}, starting from scratch", file=sys.stderr)
        ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        state = TrainState(step=int(ckpt["step"]), seconds=float(ckpt.get("seconds", 0.0)),
                           best_dice=float(ckpt.get("best", {}).get("dice", -1.0)),
                           best_step=int(ckpt.get("best", {}).get("step", -1)),
                           history=[list(r) for r in ckpt.get("history", [])],
                           mlflow_run_id=ckpt.get("mlflow_run_id"))
        print(f"{out}: resuming from {latest} at step {state.step}/{iterations}", file=sys.stderr)
    else:  # a fresh start: no best/final of an earlier attempt may survive into this one
        for stale in ("best.pt", "final.pt", "latest.pt"):
            (ckpt_dir / stale).unlink(missing_ok=True)

    if not (out / "run_config.json").is_file():  # a record of what this folder was trained with
        atomic_write_json(out / "run_config.json", run_config)

    from .tracking import RunTracker

    tracker = RunTracker(run_config, out, enabled=tracking, resume_run_id=state.mlflow_run_id)
    state.mlflow_run_id = tracker.run_id
    if tracker.run_id and state.step == 0:
        tracker.log_text(json.dumps(run_config, indent=2, sort_keys=True), "run_config.json")
        tracker.set_tags({"device": str(device), "precision": precision.name, "threads": str(n_threads),
                          "deterministic": str(deterministic)})

    batches = TrainBatches(run_config["prepared_dir"], "train", int(tr["batch_size"]),
                           tuple(run_config["size"]), tr.get("augment", {}), seed)
    forward = model
    if tr.get("compile") and device.type == "cuda":
        forward = torch.compile(model)

    def payload(kind: str) -> dict:
        return {
            "model": model.state_dict(), "model_kwargs": kwargs,
            "preprocess": manifest["preprocess"], "labels": manifest.get("labels", run_config.get("labels")),
            "step": state.step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_state(),
            "config": run_config, "best": {"dice": state.best_dice, "step": state.best_step},
            "history": state.history, "seconds": state.seconds, "mlflow_run_id": state.mlflow_run_id,
            "kind": kind,
        }

    def save_latest() -> None:
        tracker.flush()  # before the checkpoint: on a kill, metrics are re-sent, never lost
        save_checkpoint(latest, payload("latest"))
        _write_history(out / "history.csv", state.history)

    val_every = int(tr.get("val_every", 1000))
    ckpt_every = int(tr.get("checkpoint_every", 1000))
    bar = _progress(iterations, state.step, run_config, progress)
    model.train()
    steps = _steps(batches, state.step, iterations, int(tr.get("workers", 0)), device)
    try:
        with _StopFlag() as stop:
            t_last = time.perf_counter()
            for t, (image, label) in steps:
                image = image.to(device, non_blocking=True)
                if precision.channels_last:
                    image = image.contiguous(memory_format=torch.channels_last)
                label = label.to(device, dtype=torch.int64, non_blocking=True)
                lr = optimizer.param_groups[0]["lr"]
                with torch.autocast(device.type, dtype=precision.dtype or torch.float32,
                                    enabled=precision.dtype is not None):
                    logits = forward(image)
                loss = loss_fn(logits, label)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                scheduler.step()
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value) and scaler is None:
                    raise TrainingDiverged(f"{out}: loss became {loss_value} at iteration {t + 1}; lower "
                                           f"train.lr (now {tr['lr']}) or set train.amp: off, then rerun "
                                           "with --restart")
                state.step = t + 1
                now = time.perf_counter()
                state.seconds += now - t_last
                t_last = now
                dice = None
                if state.step % val_every == 0 or state.step == iterations:
                    dice = validate(model, run_config["prepared_dir"], tuple(run_config["size"]),
                                    kwargs["num_classes"], device, precision)
                    state.last_dice = dice
                    if dice > state.best_dice:
                        state.best_dice, state.best_step = dice, state.step
                        save_checkpoint(ckpt_dir / "best.pt", payload("best"))
                    t_last = time.perf_counter()  # validation time is not training time
                state.history.append([state.step, loss_value, lr, dice, state.seconds])
                tracker.log_metrics({"loss": loss_value, "lr": lr, "val_dice": dice}, state.step)
                if state.step % ckpt_every == 0 or state.step == iterations or stop.stop:
                    save_latest()
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", dice=f"{state.last_dice:.3f}" if state.last_dice is not None
                                else "-", refresh=False)
                if stop.stop:
                    bar.close()
                    tracker.finish("KILLED")
                    raise UserError(f"{out}: stopped by SIGTERM at iteration {state.step}; latest.pt saved - "
                                    "rerun the same command to resume")
    except KeyboardInterrupt:
        tracker.finish("KILLED")
        raise
    except UserError as exc:
        if "stopped by SIGTERM" not in str(exc):
            tracker.finish("FAILED")
        raise
    except Exception:
        tracker.finish("FAILED")  # the run shows as failed in MLflow; a rerun resumes it
        raise
    bar.close()

    if state.step < iterations:  # nothing ran (already at the end) is fine; fewer is a bug
        raise RuntimeError(f"training stopped at {state.step} of {iterations} iterations")
    if not (ckpt_dir / "best.pt").is_file():  # e.g. resumed after the last validation was lost
        save_checkpoint(ckpt_dir / "best.pt", payload("best"))
    save_checkpoint(ckpt_dir / "final.pt", payload("final"))
    _write_history(out / "history.csv", state.history)
    done = {
        "dataset": run_config["dataset"], "variant": run_config["variant"], "seed": seed,
        "iterations": iterations, "step": state.step, "best_val_dice": state.best_dice,
        "best_step": state.best_step, "final_val_dice": state.last_dice, "seconds": round(state.seconds, 3),
        "images_per_second": round(iterations * int(tr["batch_size"]) / max(state.seconds, 1e-9), 3),
        "device": str(device), "precision": precision.name, "threads": n_threads,
        "deterministic": deterministic, "mlflow_run_id": tracker.run_id,
    }
    if tracker.run_id:
        tracker.log_metrics({"best_val_dice": state.best_dice, "train_seconds": state.seconds}, state.step)
        tracker.log_artifact(out / "history.csv")
        tracker.log_artifact(ckpt_dir / "best.pt", "checkpoints")
        tracker.log_artifact(ckpt_dir / "final.pt", "checkpoints")
        example = np.zeros((1, kwargs["in_channels"], *kwargs["input_size"]), np.float32)
        model.eval()
        tracker.log_model(model.to(memory_format=torch.contiguous_format).cpu() if device.type != "cpu" else model,
                          example)
        tracker.set_tags({"best_step": str(state.best_step)})
        tracker.finish("FINISHED")
    atomic_write_json(done_path, done)  # last: Snakemake's sign of completion
    return done


def _steps(batches, start: int, stop: int, workers: int, device: torch.device):
    """Yield ``(t, (image, label))`` for ``t`` in ``[start, stop)`` as tensors.

    With ``workers > 0`` a DataLoader prefetches in background processes; the
    batches are the same (each is a pure function of ``(seed, t)``).
    """
    if workers <= 0:
        for t in range(start, stop):
            yield t, _as_tensors(batches[t])
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(_BatchRange(batches, start, stop), batch_size=None, shuffle=False,
                        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=False)
    yield from enumerate(loader, start=start)


def _as_tensors(item):
    image, label = item
    return torch.as_tensor(np.asarray(image), dtype=torch.float32), torch.as_tensor(np.asarray(label))


class _BatchRange(torch.utils.data.Dataset):
    """Batches ``start .. stop-1`` of a ``TrainBatches`` (module level: picklable for spawn workers)."""

    def __init__(self, batches, start: int, stop: int) -> None:
        self.batches, self.start, self.stop = batches, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int):
        return _as_tensors(self.batches[self.start + i])


def _progress(total: int, initial: int, rc: dict, enabled: bool):
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=f"train {rc['dataset']}/{rc['variant']}/seed{rc['seed']}",
                file=sys.stderr, unit="it", disable=not enabled, dynamic_ncols=tty,
                mininterval=0.5 if tty else 30.0)  # logs (Snakemake, Slurm) get a line per 30 s
