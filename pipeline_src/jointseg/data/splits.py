"""Train/val/test assignment: official (from the layout) or seeded, stored in ``splits.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io_utils import UserError
from .cases import RawCase

SPLITS = ("train", "val", "test")


def load_previous_splits(out: Path) -> dict | None:
    """The ``splits.json`` of an earlier run (``None`` if absent or unreadable)."""
    path = out / "splits.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _seeded_counts(n: int, fr: np.ndarray) -> tuple[int, int]:
    n_train = int(round(fr[0] * n))
    n_val = int(round(fr[1] * n))
    if n >= 3:  # every split that is asked for gets at least one case
        n_train = max(n_train, 1 if fr[0] > 0 else 0)
        n_val = max(n_val, 1 if fr[1] > 0 else 0)
        n_val = min(n_val, n - n_train - (1 if fr[2] > 0 else 0))
    return n_train, n_val


def make_splits(
    cases: list[RawCase],
    rule: str,
    seed: int,
    fractions,
    previous: dict | None,
    source: Path,
    fixed: dict[str, str] | None = None,
) -> dict:
    """Assign every case to train/val/test (official from the layout, or seeded and stored).

    ``fixed`` (id -> split) are cases whose split the layout decides even under
    the seeded rule (nnU-Net: labelled ``imagesTs`` cases are the test split);
    the other cases are then seeded over the splits that ``fixed`` leaves empty.
    """
    fixed = dict(fixed or {})
    ids = sorted(c.id for c in cases)
    if rule == "official":
        missing = [c for c in cases if c.split not in SPLITS]
        if missing:
            raise UserError(
                f"{missing[0].image}: no official split for this case (folder names give none); use split rule 'seeded'"
            )
        return {"rule": "official", "seed": seed, **{s: sorted(c.id for c in cases if c.split == s) for s in SPLITS}}
    if previous is not None:
        same_ids = sorted(sum((previous.get(s, []) for s in SPLITS), [])) == ids
        same_fixed = all(cid in previous.get(s, []) for cid, s in fixed.items())
        if same_ids and same_fixed and previous.get("seed") == seed and previous.get("rule", "seeded") == "seeded":
            return {"rule": "seeded", "seed": seed, **{s: sorted(previous[s]) for s in SPLITS}}
        print(f"jointseg prepare: stored splits.json does not match the cases/seed of {source}; making a new one")
    fr = np.asarray(fractions, np.float64) * [s not in fixed.values() for s in SPLITS]
    if fr.sum() <= 0:
        raise UserError(f"split fractions {list(fractions)} sum to 0 over the splits the layout leaves open")
    free = [cid for cid in ids if cid not in fixed]
    n_train, n_val = _seeded_counts(len(free), fr / fr.sum())
    picked = [free[i] for i in np.random.default_rng(seed).permutation(len(free))]
    out = {"train": picked[:n_train], "val": picked[n_train : n_train + n_val], "test": picked[n_train + n_val :]}
    for cid, split in fixed.items():
        out[split].append(cid)
    return {"rule": "seeded", "seed": seed, **{s: sorted(out[s]) for s in SPLITS}}
