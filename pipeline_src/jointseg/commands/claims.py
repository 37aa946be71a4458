"""``jointseg claims``: attention statistics, balance and the verdict on each of the paper's claims.

    jointseg claims --config CONFIG --out results/<study>/summary \\
        --metrics <every run's metrics.csv> --attention-stats <every attention run's attention_stats.csv>

What is written: :mod:`jointseg.reporting.claims_report`.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from ..config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg claims``."""
    parser.add_argument("--config", required=True, help="study config YAML (order, bootstrap resamples)")
    parser.add_argument("--out", required=True, help="output folder (the study's summary folder)")
    parser.add_argument("--metrics", nargs="+", required=True, metavar="FILE", help="metrics.csv of every run")
    parser.add_argument(
        "--attention-stats",
        nargs="*",
        default=[],
        metavar="FILE",
        help="attention_stats.csv of every run with attention (`jointseg attention-stats`)",
    )


def main(args: argparse.Namespace) -> int:
    """Run ``jointseg claims``."""
    from ..reporting.claims_report import write_claims  # lazy: pandas stays out of `jointseg --help`

    written = write_claims(load_config(args.config), args.metrics, args.attention_stats, Path(args.out))
    with open(Path(args.out) / "claims.csv", newline="") as handle:
        for r in csv.DictReader(handle):
            print(f"jointseg claims: {r['claim']}: {r['verdict']} ({r['reason']})", file=sys.stderr)
    print(f"jointseg claims: wrote {len(written)} files to {args.out}")
    return 0
