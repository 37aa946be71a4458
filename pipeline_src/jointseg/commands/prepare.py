"""``jointseg prepare``: raw images/volumes -> arrays + manifest.json + splits.json.

    jointseg prepare DATASET --config config/config.yaml [--raw data/raw/DATASET] [--out data/prepared/DATASET/KEY]
    jointseg prepare --format FORMAT --source PATH --out DIR [--size N [N]] [--seed K]

FORMAT: a key of :data:`jointseg.data.formats.FORMATS` (``jointseg prepare --help`` lists them).

What is written, and how: :mod:`jointseg.data.prepare`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import paths
from ..config import load_dataset_entry, preparation_key
from ..data.formats import FORMATS
from ..data.marker import source_root
from ..io_utils import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg prepare``."""
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


def main(args: argparse.Namespace) -> int:
    """Run ``jointseg prepare``."""
    from ..data.prepare import Settings, prepare  # lazy: scikit-image and scipy stay out of `jointseg --help`

    if args.dataset:
        if not args.config:
            raise UserError("DATASET needs --config (or use --format F --source PATH --out DIR)")
        raw, out, fields = from_config(args)
        settings = Settings(**fields)
    else:
        if not (args.format and args.source and args.out):
            raise UserError(f"give DATASET --config FILE, or --format {{{','.join(FORMATS)}}} --source PATH --out DIR")
        raw, out = Path(args.source), Path(args.out)
        settings = Settings(
            dataset=out.name,
            format=args.format,
            size=size_arg(args.size, (64, 64)),
            slice_axis=2 if args.slice_axis is None else args.slice_axis,
            split_rule=args.split_rule,
            seed=args.seed or 0,
        )
    manifest = prepare(raw, out, settings)
    counts = {s: sum(c["split"] == s for c in manifest["cases"]) for s in ("train", "val", "test")}
    print(f"jointseg prepare: {settings.dataset}: {len(manifest['cases'])} cases {counts} -> {out}")
    return 0


def size_arg(values: list[int] | None, default) -> tuple[int, int]:
    """``--size``: N or H W, else ``default``."""
    if not values:
        return tuple(default)  # type: ignore[return-value]
    if len(values) > 2:
        raise UserError("--size takes N or H W")
    return (values[0], values[-1])


def from_config(args: argparse.Namespace) -> tuple[Path, Path, dict]:
    """``(raw folder, output folder, Settings fields)`` of DATASET in ``--config``, with the command line's
    overrides."""
    config, entry = load_dataset_entry(args.config, args.dataset)
    split = entry["split"]
    # The default output folder is keyed by the settings actually used, overrides included.
    entry = {
        **entry,
        "size": list(size_arg(args.size, entry["size"])),
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
    fields = {
        "dataset": args.dataset,
        "format": entry["format"],
        "size": tuple(entry["size"]),
        "slice_axis": entry["slice_axis"],
        "labels": dict(entry["labels"]) if entry["labels"] else None,  # None: the data set's own names
        "split_rule": entry["split"]["rule"],
        "seed": entry["split"]["seed"],
        "fractions": tuple(split["fractions"]),
    }
    return source_root(raw), out, fields
