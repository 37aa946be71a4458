"""``jointseg predict``: segment images (PNG/JPEG) or NIfTI volumes of any size with a checkpoint.

    jointseg predict --checkpoint results/D/V/seed0/checkpoints/best.pt \\
        --input data/prepared/D/KEY/test/images --out results/D/V/seed0/predictions

(``--output`` is still accepted for ``--out``.) What is written: :mod:`jointseg.inference.predict`.
"""

from __future__ import annotations

import argparse
import sys

from ..io_utils import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg predict``."""
    parser.add_argument("--checkpoint", required=True, help="a checkpoint (.pt) written by 'jointseg train'")
    parser.add_argument("--input", required=True, help="an image/NIfTI file or a folder of them")
    parser.add_argument("--out", help="output folder")
    parser.add_argument("--output", dest="output_alias", help=argparse.SUPPRESS)  # the old name of --out
    parser.add_argument("--probabilities", action="store_true", help="also write class probabilities")
    parser.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap (default 0.25)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: $OMP_NUM_THREADS, else all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Run ``jointseg predict``."""
    from ..inference.predict import list_inputs, predict_files  # lazy: torch stays out of `jointseg --help`

    out = args.out or args.output_alias
    if not out:
        raise UserError("give the output folder with --out DIR")
    files = list_inputs(args.input)
    written = predict_files(
        args.checkpoint,
        files,
        out,
        args.probabilities,
        args.overlap,
        args.device,
        args.threads,
        progress=not args.no_progress,
    )
    print(f"{out}: {len(written)} prediction(s) written", file=sys.stderr)
    return 0
