"""``jointseg prepare``: raw images/volumes -> arrays + manifest.json + splits.json.

    jointseg prepare DATASET --config config/config.yaml [--raw data/raw/DATASET] [--out data/prepared/DATASET/KEY]
    jointseg prepare --format {isic,msd,nnunet} --source PATH --out DIR [--size N [N]] [--seed K]

Output (docs/design.md "Prepared data")::

    DIR/manifest.json     data set, label map, the preprocess spec, one record per case
    DIR/splits.json       {"seed", "rule", "train", "val", "test"}; reused on reruns when consistent
    DIR/arrays/<id>_image.npy, <id>_label.npy    (memory-mappable; images (C, H, W) / (S, C, H', W'))
    DIR/test/images/<id>.<ext>, DIR/test/labels/<id>.<ext>   test cases on the original grid
        (nnU-Net: test/images/<id>_0000<ending>, <id>_0001<ending>, ... one file per channel)

Adapters (``format``): ``isic`` (:mod:`.isic`), ``msd`` (:mod:`.msd`, also
multi-modal 4-D tasks), ``nnunet`` (:mod:`.nnunet`, nnU-Net v2 raw data sets).
With a config, the cases are read from the raw folder, or in place from the
local folder the download recorded (:func:`jointseg.data.marker.source_root`).

Everything is written into a temporary sibling folder that is renamed onto DIR
at the very end, so a failure (bad input gets a :class:`UserError` naming the
file) leaves no folder that looks finished. The output bytes depend only on the
input bytes and the settings (sorted keys, no timestamps, sequential float
sums), so two runs are byte-identical.
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..io_utils import UserError, atomic_write_json
from . import isic, msd, nnunet
from .cases import Layout, RawCase
from .marker import source_root
from .prepare_2d import prepare_2d
from .prepare_3d import prepare_3d
from .preprocess import SPEC_VERSION
from .splits import load_previous_splits, make_splits

FORMATS = ("isic", "msd", "nnunet")
__all__ = ["FORMATS", "RawCase", "Settings", "add_arguments", "main", "make_splits", "prepare"]


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", nargs="?", help="data set name in the config's 'datasets'")
    parser.add_argument("--config", help="study config YAML (with DATASET)")
    parser.add_argument("--raw", help="raw folder (default <data_dir>/raw/DATASET)")
    parser.add_argument(
        "--out", help="output folder (default <data_dir>/prepared/DATASET/KEY, KEY the hash of its settings)"
    )
    parser.add_argument("--format", choices=FORMATS, help="without a config: the layout of --source")
    parser.add_argument("--source", help="without a config: the folder with the extracted raw data")
    parser.add_argument("--size", type=int, nargs="+", help="training size: N or H W (default 64)")
    parser.add_argument("--seed", type=int, help="split seed (default 0)")
    parser.add_argument("--split-rule", choices=["official", "seeded"], help="default: official if the layout has one")
    parser.add_argument("--slice-axis", type=int, choices=[0, 1, 2], help="3-D: canonical axis to slice along")


def _size(values: list[int] | None, default) -> tuple[int, int]:
    if not values:
        return tuple(default)  # type: ignore[return-value]
    if len(values) > 2:
        raise UserError("--size takes N or H W")
    return (values[0], values[-1])


def _from_config(args: argparse.Namespace) -> tuple[Path, Path, Settings]:
    """``(raw folder, output folder, settings)`` of DATASET in ``--config``, with the command line's overrides."""
    from .. import paths
    from ..config import load_dataset_entry, preparation_key

    config, entry = load_dataset_entry(args.config, args.dataset)
    split = entry["split"]
    # The default output folder is keyed by the settings actually used, overrides included.
    entry = {
        **entry,
        "size": list(_size(args.size, entry["size"])),
        "slice_axis": entry["slice_axis"] if args.slice_axis is None else args.slice_axis,
        "split": {
            **split,
            "rule": args.split_rule or split["rule"],
            "seed": split["seed"] if args.seed is None else args.seed,
        },
    }
    raw = Path(args.raw or paths.raw_dir(config["data_dir"], args.dataset))
    out = Path(args.out or paths.prepared_dir(config["data_dir"], args.dataset, preparation_key(entry)))
    if not (raw / ".complete.json").exists():
        raise UserError(
            f"{raw}: not a complete download (no .complete.json); run "
            f"`jointseg download {args.dataset} --config {args.config}` first"
        )
    settings = Settings(
        dataset=args.dataset,
        format=entry["format"],
        size=tuple(entry["size"]),
        slice_axis=entry["slice_axis"],
        labels=dict(entry["labels"]) if entry["labels"] else None,  # None: the data set's own names
        split_rule=entry["split"]["rule"],
        seed=entry["split"]["seed"],
        fractions=tuple(split["fractions"]),
    )
    return source_root(raw), out, settings


def main(args: argparse.Namespace) -> int:
    if args.dataset:
        if not args.config:
            raise UserError("DATASET needs --config (or use --format F --source PATH --out DIR)")
        raw, out, settings = _from_config(args)
    else:
        if not (args.format and args.source and args.out):
            raise UserError("give DATASET --config FILE, or --format {isic,msd,nnunet} --source PATH --out DIR")
        raw, out = Path(args.source), Path(args.out)
        settings = Settings(
            dataset=out.name,
            format=args.format,
            size=_size(args.size, (64, 64)),
            slice_axis=2 if args.slice_axis is None else args.slice_axis,
            split_rule=args.split_rule,
            seed=args.seed or 0,
        )
    manifest = prepare(raw, out, settings)
    counts = {s: sum(c["split"] == s for c in manifest["cases"]) for s in ("train", "val", "test")}
    print(f"jointseg prepare: {settings.dataset}: {len(manifest['cases'])} cases {counts} -> {out}")
    return 0


# --------------------------------------------------------------------------- driver


def find_layout(source: Path, st: Settings) -> Layout:
    """Run the format's adapter over ``source``."""
    if st.format == "isic":
        return Layout(
            cases=isic.find_cases(source), labels=st.labels or dict(isic.DEFAULT_LABELS), channels=["R", "G", "B"]
        )
    if st.format == "msd":
        cases, meta = msd.find_cases(source)
        labels = st.labels or {
            str(k): str(v) for k, v in meta.get("labels", {"0": "background", "1": "foreground"}).items()
        }
        return Layout(cases=cases, labels=labels, channels=msd.channel_names(meta))
    if st.format == "nnunet":
        return nnunet.find_layout(source, st.labels)
    raise UserError(f"unknown format '{st.format}'; choose one of {', '.join(FORMATS)}")


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
    ndim = 2 if st.format == "isic" or layout.file_ending == ".png" else 3

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
