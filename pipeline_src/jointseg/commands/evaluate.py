"""``jointseg evaluate``: per-case metrics of a prediction folder against a reference folder.

    jointseg evaluate --pred DIR --ref DIR --dataset D --variant V --seed K --out metrics.csv [--manifest M]

What ``metrics.csv`` holds: :mod:`jointseg.evaluation.evaluate`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..io_utils import UserError


def parse_labels(text: str) -> list[int]:
    """``--labels 1,2``."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--labels must be comma-separated integers, got '{text}'") from None


def manifest_classes(path: Path) -> list[int]:
    """The foreground classes a prepared manifest declares (1..num_classes-1)."""
    try:
        manifest = json.loads(path.read_text())
        return list(range(1, int(manifest["num_classes"])))
    except FileNotFoundError:
        raise UserError(f"{path}: manifest not found") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a prepared-data manifest with 'num_classes' ({exc})") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg evaluate``."""
    parser.add_argument("--pred", required=True, help="folder of predicted label files (<id>.png|.nii.gz|.nii|.npy)")
    parser.add_argument("--ref", required=True, help="folder of reference label files with the same ids")
    parser.add_argument("--out", required=True, help="output metrics CSV")
    parser.add_argument("--dataset", required=True, help="data set name, written to the 'dataset' column")
    parser.add_argument("--variant", required=True, help="variant (or baseline) name, written to 'variant'")
    parser.add_argument("--seed", required=True, type=int, help="training seed, written to 'seed'")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--labels",
        type=parse_labels,
        default=None,
        help="foreground classes to score, e.g. 1,2 (default: every nonzero value found)",
    )
    group.add_argument("--manifest", default=None, help="prepared manifest.json; scores classes 1..num_classes-1")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def main(args: argparse.Namespace) -> int:
    """Run ``jointseg evaluate``."""
    from ..evaluation.evaluate import evaluate_folders, summary_text, with_run, write_metrics  # lazy: pandas

    classes = args.labels
    if args.manifest:
        classes = manifest_classes(Path(args.manifest))
    df = evaluate_folders(args.pred, args.ref, classes=classes, progress=not args.quiet)
    df = with_run(df, args.dataset, args.variant, args.seed)
    write_metrics(df, args.out)
    if not args.quiet:
        print(f"{args.out}: {df['case'].nunique()} cases, classes {sorted(df['class'].unique().tolist())}")
        print(summary_text(df))
    return 0
