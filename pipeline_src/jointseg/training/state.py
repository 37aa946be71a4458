"""What a training run carries besides tensors: progress, best score, history.

``history.csv`` has the columns ``step,loss,lr,val_dice,seconds`` (``val_dice``
empty between validations) and is rewritten atomically with every checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io_utils import atomic_write_text

HISTORY_FIELDS = ("step", "loss", "lr", "val_dice", "seconds")
# Settings that may change between an interrupted run and its resumption: they change
# speed or bookkeeping, never the sequence of weights.
RESUME_FREE_KEYS = ("threads", "workers", "checkpoint_every", "val_every", "compile")


@dataclass
class TrainState:
    """Progress of a run; saved in every checkpoint, restored on resume."""

    step: int = 0  # completed iterations
    seconds: float = 0.0  # training time so far (validation excluded)
    validation_seconds: float = 0.0  # validation time so far
    best_dice: float = -1.0  # best validation Dice so far
    best_step: int = -1
    last_dice: float | None = None
    history: list[list[float | int | None]] = field(default_factory=list)
    mlflow_run_id: str | None = None

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> "TrainState":
        """The state a ``latest.pt`` was saved with."""
        best = ckpt.get("best", {})
        return cls(
            step=int(ckpt["step"]),
            seconds=float(ckpt.get("seconds", 0.0)),
            validation_seconds=float(ckpt.get("validation_seconds", 0.0)),
            best_dice=float(best.get("dice", -1.0)),
            best_step=int(best.get("step", -1)),
            history=[list(r) for r in ckpt.get("history", [])],
            mlflow_run_id=ckpt.get("mlflow_run_id"),
        )

    def checkpoint_fields(self) -> dict[str, Any]:
        """The checkpoint entries that :meth:`from_checkpoint` reads back."""
        return {
            "step": self.step,
            "best": {"dice": self.best_dice, "step": self.best_step},
            "history": self.history,
            "seconds": self.seconds,
            "validation_seconds": self.validation_seconds,
            "mlflow_run_id": self.mlflow_run_id,
        }


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}`` (lists and empty dicts stay values)."""
    if not isinstance(obj, dict) or (not obj and prefix):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def comparable(run_config: dict) -> dict:
    """``run_config`` without the settings a resumed run may change (tracking, speed)."""
    rc = json.loads(json.dumps(run_config))
    rc.pop("mlflow", None)
    for key in RESUME_FREE_KEYS:
        rc.get("train", {}).pop(key, None)
    return rc


def changed_keys(old: dict, new: dict) -> list[str]:
    """Dotted names of the settings that differ between two run configs (resume-free ones ignored)."""
    a, b = _flatten(comparable(old)), _flatten(comparable(new))
    missing = object()  # a key absent on one side differs even from a null on the other
    return sorted(k for k in a.keys() | b.keys() if a.get(k, missing) != b.get(k, missing))


def write_history(path: Path, rows: list[list[Any]]) -> None:
    """Rewrite ``history.csv`` atomically from the rows of :class:`TrainState`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HISTORY_FIELDS)
    for step, loss, lr, dice, secs in rows:
        writer.writerow([step, f"{loss:.6g}", f"{lr:.6g}", "" if dice is None else f"{dice:.6f}", f"{secs:.2f}"])
    atomic_write_text(path, buf.getvalue())
