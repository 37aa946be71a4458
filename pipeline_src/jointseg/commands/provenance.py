"""``jointseg provenance``: code commit, package versions, data hashes and run settings as JSON.

    jointseg provenance --config results/<study>/.pipeline/config.yaml \\
        --out results/<study>/summary/provenance.json \\
        --raw data/raw/*/.complete.json --manifests data/prepared/<dataset>/<key>/manifest.json \\
        --run-configs results/<study>/*/*/seed*/run_config.json

What is recorded: :mod:`jointseg.provenance`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io_utils import atomic_write_json
from ..provenance import record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg provenance``."""
    parser.add_argument("--config", required=True, type=Path, help="the study config the workflow ran with")
    parser.add_argument("--out", required=True, type=Path, help="provenance.json to write")
    parser.add_argument("--raw", nargs="+", type=Path, default=[], help="download markers (.complete.json)")
    parser.add_argument("--manifests", nargs="+", type=Path, default=[], help="prepared manifest.json files")
    parser.add_argument("--run-configs", nargs="+", type=Path, default=[], help="run_config.json of every run")


def main(args: argparse.Namespace) -> int:
    """Write ``provenance.json``."""
    atomic_write_json(args.out, record(args.config, args.raw, args.manifests, args.run_configs))
    print(f"jointseg provenance: wrote {args.out}")
    return 0
