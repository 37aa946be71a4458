"""Preparation (``jointseg prepare``): raw images/volumes -> arrays + manifest.json + splits.json.

Output (docs/design.md "Prepared data")::

    DIR/manifest.json     data set, label map, the preprocess spec, one record per case
    DIR/splits.json       {"seed", "rule", "train", "val", "test"}; reused on reruns when consistent
    DIR/arrays/<id>_image.npy, <id>_label.npy    (memory-mappable; images (C, H, W) / (S, C, H', W'))
    DIR/test/images/<id>.<ext>, DIR/test/labels/<id>.<ext>   test cases on the original grid
        (nnU-Net: test/images/<id>_0000<ending>, <id>_0001<ending>, ... one file per channel)

The data set's ``format`` names its adapter (:data:`jointseg.data.formats.FORMATS`),
which finds the cases and says whether they are images (2-D) or volumes (3-D).
With a config, the cases are read from the raw folder, or in place from the
local folder the download recorded (:func:`jointseg.data.marker.source_root`).

Everything is written into a temporary sibling folder that is renamed onto DIR
at the very end, so a failure (bad input gets a :class:`UserError` naming the
file) leaves no folder that looks finished. The output bytes depend only on the
input bytes and the settings (sorted keys, no timestamps, sequential float
sums), so two runs are byte-identical.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..io_utils import UserError, atomic_write_json
from .cases import Layout, RawCase
from .formats import FORMATS
from .prepare_2d import prepare_2d
from .prepare_3d import prepare_3d
from .preprocess import SPEC_VERSION
from .splits import load_previous_splits, make_splits

__all__ = ["FORMATS", "RawCase", "Settings", "make_splits", "prepare"]


@dataclass
class Settings:
    """What ``prepare`` needs besides the raw folder (a data-set config entry, or CLI flags)."""

    dataset: str
    format: str
    size: tuple[int, int] = (64, 64)
    slice_axis: int = 2
    labels: dict | None = None  # None: the adapter's default / dataset.json
    split_rule: str | None = None  # None: official when the layout has one, else seeded
    seed: int = 0
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- driver


def find_layout(source: Path, st: Settings) -> Layout:
    """Run the format's adapter over ``source``."""
    if st.format not in FORMATS:
        raise UserError(f"unknown format '{st.format}'; choose one of {', '.join(FORMATS)}")
    return FORMATS[st.format]().find_layout(source, st.labels)


def _swap_in(tmp: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def prepare(source: str | os.PathLike, out: str | os.PathLike, st: Settings) -> dict:
    """Prepare the raw data under ``source`` into ``out``; return the manifest."""
    source, out = Path(source), Path(out)
    layout = find_layout(source, st)
    for note in layout.notes:
        print(f"jointseg prepare: {st.dataset}: {note}")
    rule = st.split_rule or ("official" if all(c.split for c in layout.cases) else "seeded")
    splits = make_splits(
        layout.cases, rule, st.seed, st.fractions, load_previous_splits(out), source, layout.fixed_splits
    )
    split_of = {cid: s for s in ("train", "val", "test") for cid in splits[s]}
    ndim = layout.ndim

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for sub in ("arrays", "test/images", "test/labels"):
            (tmp / sub).mkdir(parents=True)
        spec, records = (prepare_2d if ndim == 2 else prepare_3d)(layout, split_of, source, tmp, st)
        spec = {"version": SPEC_VERSION, **spec, "labels": layout.labels}
        manifest = {
            "dataset": st.dataset,
            "format": st.format,
            "ndim": ndim,
            "in_channels": spec["in_channels"],
            "num_classes": len(layout.labels),
            "labels": layout.labels,
            "size": list(st.size),
            "preprocess": spec,
            "split": {"rule": splits["rule"], "seed": splits["seed"]},
            "cases": sorted(records, key=lambda r: r["id"]),
        }
        atomic_write_json(tmp / "splits.json", splits)
        atomic_write_json(tmp / "manifest.json", manifest)  # last: marks the folder complete
        _swap_in(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):  # disk full, permissions: not a bug, say what to do
            raise UserError(
                f"cannot write the prepared data for {out} ({exc}); free disk space or "
                "fix permissions, or choose another --out"
            ) from None
        raise
    return manifest
