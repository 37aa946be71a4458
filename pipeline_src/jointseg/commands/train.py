"""``jointseg train``: train one (data set, variant, seed), resumably.

Two ways to say what to train::

    jointseg train --run-config results/D/V/seedK/run_config.json --out results/D/V/seedK
    jointseg train --config config/config.yaml --dataset D --variant V --seed K --out DIR

The first is what Snakemake runs (``jointseg resolve`` wrote the file). Rerunning
the same command after an interruption resumes from ``checkpoints/latest.pt``;
a finished folder (``train_done.json``) is left alone unless ``--restart``.
The loop itself is in :mod:`jointseg.training.loop`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..io_utils import UserError
from .resolve import add_run_selection, run_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg train``."""
    src = parser.add_argument_group("what to train (either --run-config or --config/--dataset/--variant/--seed)")
    src.add_argument("--run-config", default=None, help="run_config.json written by 'jointseg resolve'")
    add_run_selection(src, required=False)
    parser.add_argument("--out", required=True, help="output folder results/<dataset>/<variant>/seed<k>")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: train.threads, else $OMP_NUM_THREADS, else all)",
    )
    parser.add_argument("--restart", action="store_true", help="ignore existing checkpoints and start over")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow (also: JOINTSEG_MLFLOW=0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_run_config(args: argparse.Namespace) -> dict:
    """The run config from ``--run-config`` or resolved from ``--config``.

    ``--run-config`` is complete: options of the other way (``--set`` included) are
    refused rather than silently ignored.
    """
    if args.run_config:
        given = {"--config": args.config, "--dataset": args.dataset, "--variant": args.variant}
        given.update({"--seed": args.seed, "--set": args.overrides})
        mixed = [flag for flag, value in given.items() if value is not None]
        if mixed:
            raise UserError(
                f"{args.run_config}: {', '.join(mixed)} cannot be combined with --run-config, which holds the "
                "complete settings; write a new one with 'jointseg resolve ... --set JSON --out FILE', "
                "or train with --config/--dataset/--variant/--seed --set JSON"
            )
        path = Path(args.run_config)
        if not path.is_file():
            raise UserError(f"{path}: run config not found; create it with 'jointseg resolve' or use --config")
        try:
            rc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON ({exc}); recreate it with 'jointseg resolve'") from None
        missing = [
            k for k in ("study", "dataset", "variant", "seed", "prepared_dir", "size", "model", "train") if k not in rc
        ]
        if missing:
            raise UserError(f"{path}: missing keys {missing}; recreate it with 'jointseg resolve'")
        return rc
    if not (args.config and args.dataset and args.variant and args.seed is not None):
        raise UserError("give --run-config FILE, or all of --config, --dataset, --variant and --seed")
    return run_from_args(args)


def main(args: argparse.Namespace) -> int:
    """Train (or resume) the run; a finished one is left alone."""
    from ..training.loop import train  # lazy: torch stays out of `jointseg --help`

    rc = load_run_config(args)
    done = train(
        rc,
        args.out,
        device_spec=args.device,
        threads=args.threads,
        restart=args.restart,
        tracking=not args.no_mlflow,
        progress=not args.no_progress,
    )
    print(
        f"{args.out}: best validation Dice {done['best_val_dice']:.4f} at step {done['best_step']} "
        f"({done['seconds']:.1f} s, {done['images_per_second']:.1f} images/s)",
        file=sys.stderr,
    )
    return 0
