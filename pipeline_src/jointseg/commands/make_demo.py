"""``jointseg make-demo``: (re)generate the embedded synthetic demo data sets.

    jointseg make-demo --out pipeline_src/jointseg/data/demo [--lock config/checksums.demo.lock.json]

What they are and why their bytes are reproducible: :mod:`jointseg.data.demo`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.sources import lock_key, record_lock
from ..io_utils import sha256_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg make-demo``."""
    parser.add_argument("--out", default="pipeline_src/jointseg/data/demo", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0: the shipped archives)")
    parser.add_argument(
        "--lock", help="also record the archives' sha256 in this lock file (keys demo_isic/<name>, demo_msd/<name>)"
    )


def main(args: argparse.Namespace) -> int:
    """Run ``jointseg make-demo``."""
    from ..data.demo import make_demo  # lazy: PIL, nibabel and scikit-image stay out of `jointseg --help`

    files = make_demo(args.out, seed=args.seed)
    for dataset, path in files:
        digest = sha256_file(path)
        print(f"{digest}  {path}")
        if args.lock:
            url = f"pipeline_src/jointseg/data/demo/{path.relative_to(Path(args.out)).as_posix()}"
            record_lock(
                args.lock, lock_key(dataset, path.name), {"sha256": digest, "size": path.stat().st_size, "url": url}
            )
    return 0
