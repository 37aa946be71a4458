"""``jointseg headline-metrics``: headline means of every data set x variant, as JSON for ``dvc metrics``.

    jointseg headline-metrics --out results/<study>/summary/metrics.json --metrics <run>/metrics.csv ...

What the numbers are: :mod:`jointseg.reporting.headline`.
"""

from __future__ import annotations

import argparse

from ..io_utils import atomic_write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg headline-metrics``."""
    parser.add_argument("--metrics", nargs="+", required=True, metavar="FILE", help="metrics.csv of each run")
    parser.add_argument("--out", required=True, help="output JSON (e.g. results/summary/metrics.json)")


def main(args: argparse.Namespace) -> int:
    """Run ``jointseg headline-metrics``."""
    from ..reporting.headline import headline  # lazy: pandas stays out of `jointseg --help`

    atomic_write_json(args.out, headline(args.metrics))
    return 0
