"""``jointseg resolve``: write the settings of one training run as JSON.

Snakemake's train rule reads this file, so a change in one variant's settings
changes only that variant's file and reruns only what depends on it.
"""

from __future__ import annotations

import argparse
import json

from .config import load_config, resolve_run
from .io_utils import atomic_write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="study config YAML")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--set", dest="overrides", default=None,
                        help="JSON object deep-merged into the config before validation")
    parser.add_argument("--out", required=True, help="output JSON path")


def main(args: argparse.Namespace) -> int:
    overrides = json.loads(args.overrides) if args.overrides else None
    config = load_config(args.config, overrides)
    atomic_write_json(args.out, resolve_run(config, args.dataset, args.variant, args.seed))
    return 0
