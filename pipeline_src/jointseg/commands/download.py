"""``jointseg download``: fetch a data set's archives, verify checksums, extract.

    jointseg download DATASET --config config/config.yaml [--out data/raw/DATASET]
    jointseg download --url URL [--url URL ...] --out DIR [--sha256 HEX ...] [--lock FILE]

How (resumed HTTP, checksums, safe extraction, the completion marker): :mod:`jointseg.data.download`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import load_dataset_entry
from ..data.sources import Source, basename_of, sources_of
from ..io_utils import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg download``."""
    parser.add_argument("dataset", nargs="?", help="data set name in the config's 'datasets'")
    parser.add_argument("--config", help="study config YAML (with DATASET)")
    parser.add_argument("--out", help="target folder (default <data_dir>/raw/DATASET)")
    parser.add_argument(
        "--url", action="append", default=[], help="without a config: a URL or path to fetch (repeatable)"
    )
    parser.add_argument(
        "--sha256", action="append", default=[], help="expected sha256 of each --url, in the same order"
    )
    parser.add_argument("--lock", help="checksum lock file (default: the data set's lock_file)")
    parser.add_argument("--no-extract", action="store_true", help="keep archives packed")
    parser.add_argument("--retries", type=int, default=5, help="retries per file after a failure")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry")


def main(args: argparse.Namespace) -> int:
    """Run ``jointseg download``."""
    from ..data.download import download_dataset  # lazy: requests and tqdm stay out of `jointseg --help`

    if args.dataset:
        if not args.config:
            raise UserError("DATASET needs --config (or use --url ... --out DIR without a data set)")
        config, entry = load_dataset_entry(args.config, args.dataset)
        out = Path(args.out or Path(config["data_dir"]) / "raw" / args.dataset)
        sources = sources_of(entry)
        search = [Path(args.config).resolve().parent.parent]  # the project root of config/<x>.yaml
        lock = args.lock or project_file(entry["lock_file"], search[0])
        name = args.dataset
    else:
        if not args.url or not args.out:
            raise UserError("give DATASET --config FILE, or --url URL ... --out DIR")
        if args.sha256 and len(args.sha256) != len(args.url):
            raise UserError(
                f"{len(args.sha256)} --sha256 values for {len(args.url)} --url values; give one per URL or none"
            )
        shas = args.sha256 or [None] * len(args.url)
        sources = [Source(url=u, name=basename_of(u), sha256=s) for u, s in zip(args.url, shas)]
        out = Path(args.out)
        lock, search, name = args.lock, [], out.name
    download_dataset(
        name,
        sources,
        out,
        lock=lock,
        extract=not args.no_extract,
        retries=args.retries,
        timeout=args.timeout,
        search=search,
    )
    return 0


def project_file(path: str, root: Path) -> Path:
    """A relative project path: under the current folder if it exists there, else under ``root``."""
    p = Path(path)
    if p.is_absolute() or p.exists() or not (root / p).exists():
        return p
    return root / p
