"""``jointseg resolve``: write the settings of one training run as JSON.

Snakemake's train rule reads this file, so a change in one variant's settings
changes only that variant's file and reruns only what depends on it.
"""

from __future__ import annotations

import argparse
import json

from ..architectures import baselines
from ..config import load_config, resolve_run
from ..io_utils import atomic_write_json
from ..variants import VARIANTS


def add_run_selection(parser, required: bool = True) -> None:
    """The options that pick one run from a study config (shared with ``jointseg train``)."""
    parser.add_argument("--config", required=required, default=None, help="study config YAML")
    parser.add_argument(
        "--dataset", required=required, default=None, help="data set name (a key of the config's 'datasets')"
    )
    parser.add_argument(
        "--variant",
        required=required,
        default=None,
        help=f"attention variant ({', '.join(VARIANTS)}) or a baseline ({', '.join(baselines())})",
    )
    parser.add_argument("--seed", type=int, required=required, default=None, help="training seed")
    parser.add_argument(
        "--set",
        dest="overrides",
        default=None,
        help='JSON object deep-merged into the config before validation, e.g. \'{"train": {"iterations": 10}}\'',
    )


def run_from_args(args: argparse.Namespace) -> dict:
    """Load, override, validate the config named by ``args`` and resolve the selected run."""
    overrides = json.loads(args.overrides) if args.overrides else None
    config = load_config(args.config, overrides)
    # `jointseg train --config` has no --prepared: the keyed folder under data_dir
    return resolve_run(config, args.dataset, args.variant, args.seed, getattr(args, "prepared", None))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg resolve``."""
    add_run_selection(parser)
    parser.add_argument(
        "--prepared",
        default=None,
        help="the data set's prepared folder (default <data_dir>/prepared/DATASET/KEY, KEY the hash of its "
        "preparation settings)",
    )
    parser.add_argument("--out", required=True, help="output JSON path")


def main(args: argparse.Namespace) -> int:
    """Write the run's settings."""
    atomic_write_json(args.out, run_from_args(args))
    return 0
