"""``jointseg attention-stats``: the locality of one run's attention maps over fixed test queries.

    jointseg attention-stats --checkpoint CKPT --prepared DIR --out attention_stats.csv [--queries 8]

What is measured: :mod:`jointseg.evaluation.attention_stats`.
"""

from __future__ import annotations

import argparse
import sys

from ..io_utils import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg attention-stats``."""
    parser.add_argument(
        "--checkpoint", required=True, help="a run's checkpoint (.pt), the one that predicts the test set"
    )
    parser.add_argument("--prepared", required=True, help="the data set's prepared folder (manifest.json, test split)")
    parser.add_argument("--out", required=True, help="per-query CSV to write")
    parser.add_argument("--queries", type=int, default=8, help="foreground and background queries per image (each)")
    parser.add_argument("--max-cases", type=int, default=None, help="test cases used, evenly spread (default all)")
    parser.add_argument("--slices", type=int, default=3, help="3-D: slices per volume with foreground (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the query draw (default 0)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: $OMP_NUM_THREADS, else all)")


def main(args: argparse.Namespace) -> int:
    """Run ``jointseg attention-stats``."""
    from ..evaluation.attention_stats import attention_stats, write_rows  # lazy: torch

    for name in ("queries", "slices", "max_cases"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} {value}: must be at least 1")
    settings = {"queries": args.queries, "max_cases": args.max_cases, "slices": args.slices, "seed": args.seed}
    rows = attention_stats(args.checkpoint, args.prepared, settings, args.device, args.threads)
    write_rows(rows, args.out)
    print(f"jointseg attention-stats: {len(rows)} row(s) to {args.out}", file=sys.stderr)
    return 0
