"""Resume: a finished folder is left alone; an interrupted one continues from ``latest.pt``.

``latest.pt`` holds model, optimiser, scheduler, GradScaler, RNG states (python,
numpy, torch) and the iteration ``t``. The loader's batch ``t`` is a pure
function of ``(seed, t)``, so on CPU in deterministic mode a resumed run
(``kill -9`` included) ends with bit-identical weights to an uninterrupted one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..io_utils import UserError
from ..models.checkpoint import load_checkpoint
from . import checkpoint
from .build import Run
from .schedule import load_scheduler_state
from .state import TrainState, changed_keys, comparable

CHECKPOINT_NAMES = ("best.pt", checkpoint.BEST_KEPT, "final.pt", "latest.pt")


def finished(out: Path, iterations: int, restart: bool) -> dict | None:
    """The ``train_done.json`` of a completed run of ``iterations`` in ``out``, else None.

    Anything else (no record, another length, ``restart``) removes the record:
    its absence is what tells Snakemake and the next call that training is not done.
    """
    done_path = out / "train_done.json"
    if done_path.is_file() and not restart:
        done = json.loads(done_path.read_text())
        if done.get("iterations") == iterations and (out / "checkpoints" / "final.pt").is_file():
            print(f"{out}: already trained ({iterations} iterations); use --restart to train again", file=sys.stderr)
            return done
    done_path.unlink(missing_ok=True)
    return None


def _same_settings(run: Run, ckpt: dict, latest: Path) -> bool:
    """Whether ``ckpt`` continues this run. If not (Snakemake reruns a training whose
    run_config.json changed: a new run), its file is kept as ``latest.stale.pt``."""
    old = ckpt.get("config", {})
    if comparable(old) == comparable(run.config):
        return True
    stale = latest.with_name("latest.stale.pt")
    latest.replace(stale)
    changed = changed_keys(old, run.config)
    print(
        f"{run.out}: {latest.name} was trained with other settings ({', '.join(changed[:8])}); "
        f"moved to {stale.name}, starting from scratch",
        file=sys.stderr,
    )
    return False


def _restore(run: Run, ckpt: dict, latest: Path) -> None:
    try:
        run.model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:  # same settings, but the network code changed since it was saved
        detail = str(exc).strip().splitlines()[-1].strip()
        raise UserError(
            f"{latest}: its weights do not fit the network this version builds ({detail}); "
            "rerun with --restart to train from scratch"
        ) from None
    run.optimizer.load_state_dict(ckpt["optimizer"])  # also the current lr of each group
    load_scheduler_state(run.scheduler, ckpt["scheduler"], str(latest))
    if run.scaler is not None and ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    checkpoint.set_rng_state(ckpt["rng"])
    run.state = TrainState.from_checkpoint(ckpt)


def resume(run: Run, restart: bool) -> bool:
    """Load ``checkpoints/latest.pt`` into ``run`` when it holds this run's settings.

    Returns whether it resumed. A fresh start (``restart``, no or stale
    ``latest.pt``) removes the checkpoints of any earlier attempt, so no
    ``best.pt``/``final.pt`` of another training survives into this one.
    """
    latest = run.ckpt_dir / "latest.pt"
    ckpt = load_checkpoint(latest) if latest.is_file() and not restart else None
    if ckpt is not None and _same_settings(run, ckpt, latest):
        _restore(run, ckpt, latest)
        print(f"{run.out}: resuming from {latest} at step {run.state.step}/{run.iterations}", file=sys.stderr)
        return True
    for name in CHECKPOINT_NAMES:
        (run.ckpt_dir / name).unlink(missing_ok=True)
    return False
