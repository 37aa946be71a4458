"""Provenance of a study: code commit, data hashes and every run's resolved settings.

    python workflow/scripts/provenance.py --config results/.pipeline/config.yaml \
        --out results/summary/provenance.json --raw ... --manifests ... --run-configs ...

Written into ``results/summary/`` (and so into the Snakemake report, the DVC
cache and the MLflow parent run's artifacts) beside the tables it explains.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from jointseg.io_utils import atomic_write_json, sha256_file


def git_state() -> dict:
    """Commit of the working tree and whether it had uncommitted changes ('unknown' outside git)."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown", "dirty": bool(status) if status is not None else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--raw", nargs="+", type=Path, default=[])
    parser.add_argument("--manifests", nargs="+", type=Path, default=[])
    parser.add_argument("--run-configs", nargs="+", type=Path, default=[])
    args = parser.parse_args(argv)

    data = {}
    for marker in args.raw:  # download.py's marker lists every raw file with its sha256
        data.setdefault(marker.parent.name, {})["raw"] = json.loads(marker.read_text())
    for manifest in args.manifests:
        data.setdefault(manifest.parent.name, {})["manifest_sha256"] = sha256_file(manifest)
    runs = {str(p.parent): json.loads(p.read_text()) for p in args.run_configs}
    atomic_write_json(args.out, {
        "git": git_state(),
        "config": yaml.safe_load(args.config.read_text()),
        "data": data,
        "runs": runs,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
