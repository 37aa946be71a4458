"""``jointseg aggregate``: summary tables, statistics, figures and the report over all runs.

    jointseg aggregate --config CFG --out results/<study>/summary --metrics F... --run-configs F... \
        --manifests F... [--histories F...] [--checkpoints F...] [--predictions D...] [--sections claims.md]

What is written: :mod:`jointseg.reporting.aggregate`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import load_config
from ..io_utils import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg aggregate``."""
    parser.add_argument("--config", required=True, help="study config YAML (order, reference variant, report)")
    parser.add_argument("--out", required=True, help="output folder (the study's summary folder)")
    parser.add_argument("--metrics", nargs="+", required=True, metavar="FILE", help="metrics.csv of each run")
    parser.add_argument(
        "--run-configs",
        nargs="+",
        required=True,
        metavar="FILE",
        help="run_config.json of each run (training recipe, parameter counts)",
    )
    parser.add_argument(
        "--manifests",
        nargs="+",
        required=True,
        metavar="FILE",
        help="prepared manifest.json of each data set (classes, channels)",
    )
    parser.add_argument(
        "--histories",
        nargs="*",
        default=[],
        metavar="FILE",
        help="history.csv of each run, in the order of --run-configs",
    )
    parser.add_argument(
        "--test-images",
        nargs="*",
        default=[],
        metavar="DIR",
        help="test image folder of each data set, in the order of --manifests",
    )
    parser.add_argument(
        "--test-labels",
        nargs="*",
        default=[],
        metavar="DIR",
        help="test label folder of each data set, in the order of --manifests",
    )
    parser.add_argument(
        "--checkpoints",
        nargs="*",
        default=[],
        metavar="FILE",
        help="checkpoints for the qualitative and attention figures (the smallest seed of each variant is shown)",
    )
    parser.add_argument(
        "--predictions",
        nargs="*",
        default=[],
        metavar="DIR",
        help="prediction folder of each checkpoint, in the order of --checkpoints",
    )
    parser.add_argument(
        "--sections", nargs="*", default=[], metavar="FILE", help="Markdown files appended to report.md (claims.md)"
    )
    parser.add_argument("--no-figures", action="store_true", help="tables and statistics only")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the summary to the MLflow parent run")


def main(args: argparse.Namespace) -> int:
    """Run ``jointseg aggregate``."""
    from ..reporting import collect  # lazy: pandas, torch and matplotlib stay out of `jointseg --help`
    from ..reporting.aggregate import aggregate
    from ..tracking import log_parent_artifacts

    config = load_config(args.config)
    out = Path(args.out)
    inputs = collect.collect(
        args.metrics,
        args.run_configs,
        args.manifests,
        args.histories,
        args.test_images,
        args.test_labels,
        args.checkpoints,
        args.predictions,
    )
    for section in args.sections:
        if not Path(section).is_file():
            raise UserError(f"{section}: report section not found; run `jointseg claims` first")
    sections = [Path(s) for s in args.sections]
    written = aggregate(config, inputs, out, figures=not args.no_figures, config_path=args.config, sections=sections)
    if not args.no_mlflow:  # the summary folder to the MLflow parent run, if one is open
        log_parent_artifacts([out], config=config)
    print(f"jointseg aggregate: wrote {len(written)} files to {out}")
    return 0
