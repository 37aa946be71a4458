"""Provenance: which code, which packages and which data produced a result.

The one implementation of these facts in the project: MLflow runs take their
tags from here (:mod:`jointseg.tracking`), the report its provenance section
(:func:`markdown_lines`), and ``jointseg provenance`` writes the study's
``provenance.json``::

    jointseg provenance --config results/<study>/.pipeline/config.yaml \
        --out results/<study>/summary/provenance.json \
        --raw data/raw/*/.complete.json --manifests data/prepared/<dataset>/<key>/manifest.json \
        --run-configs results/<study>/*/*/seed*/run_config.json

Data are identified by hashes: the download marker (``.complete.json``) lists
every raw file with its sha256, and the sha256 of a prepared data set's
``manifest.json`` stands for the prepared arrays (the manifest records them).
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import yaml

from . import __version__
from .io_utils import UserError, sha256_file

# The packages that decide the numbers (plus the trackers that recorded them).
PACKAGES: tuple[str, ...] = ("torch", "monai", "numpy", "scipy", "pandas", "jointseg", "mlflow", "snakemake")


def _git(*args: str, cwd: str | Path | None = None) -> str | None:
    """Output of ``git ARGS`` or None (no git, not a repository, no commit yet)."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


_PACKAGE_DIR = Path(__file__).resolve().parent


def git_state(cwd: str | Path | None = None) -> dict:
    """``{"commit": sha or "unknown", "dirty": bool or None}`` of a git working tree.

    Default: the tree holding this package (the code that runs; a checkout with an
    editable install), else the current directory's. ``dirty`` counts tracked files
    only (results must not mark the code dirty); None when git cannot tell. Cached:
    one pair of git calls per folder and process.
    """
    folders = [Path(cwd)] if cwd is not None else [_PACKAGE_DIR, Path.cwd()]
    state = {"commit": "unknown", "dirty": None}
    for folder in folders:
        state = _git_state(str(folder.resolve()))
        if state["commit"] != "unknown":
            break
    return dict(state)


@functools.lru_cache(maxsize=8)
def _git_state(folder: str) -> dict:
    commit = _git("rev-parse", "HEAD", cwd=folder)
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=folder)
    return {"commit": commit or "unknown", "dirty": bool(status) if status is not None else None}


def git_commit(cwd: str | Path | None = None) -> str:
    """The checked-out commit (``git rev-parse HEAD``, see :func:`git_state`), or ``"unknown"``."""
    return git_state(cwd)["commit"]


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` and of Python (``"not installed"`` if absent)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "jointseg":  # run from a checkout without installing
                out[name] = __version__
            else:
                out[name] = "not installed"
    return out


def manifest_hash(prepared_dir: str | Path | None) -> str:
    """sha256 of a prepared data set's ``manifest.json`` (``"unknown"`` if absent)."""
    if not prepared_dir:
        return "unknown"
    manifest = Path(prepared_dir) / "manifest.json"
    return sha256_file(manifest) if manifest.is_file() else "unknown"


def record(
    config_path: str | Path,
    raw: Sequence[str | Path] = (),
    manifests: Sequence[str | Path] = (),
    run_configs: Sequence[str | Path] = (),
) -> dict:
    """The content of ``provenance.json``: git state, packages, config, data hashes, run settings.

    ``raw``: download markers ``<raw>/<dataset>/.complete.json``; ``manifests``:
    prepared ``manifest.json`` files (keyed by their ``dataset``, with their
    folder ``<prepared>/<dataset>/<key>``); ``run_configs``: each run's
    ``run_config.json`` (keyed by its folder).
    """
    config_path = Path(config_path)
    if not config_path.is_file():
        raise UserError(f"{config_path}: config file not found")
    data: dict[str, dict] = {}
    for marker in map(Path, raw):
        data.setdefault(marker.parent.name, {})["raw"] = json.loads(_read(marker))
    for manifest in map(Path, manifests):
        # the folder is named by the preparation key; the manifest names its data set
        prepared = data.setdefault(_manifest_dataset(manifest), {})
        prepared.update(prepared_dir=str(manifest.parent), manifest_sha256=sha256_file(manifest))
    runs = {str(Path(p).parent): json.loads(_read(Path(p))) for p in run_configs}
    return {
        "git": git_state(),
        "packages": package_versions(),
        "config": yaml.safe_load(config_path.read_text()),
        "data": data,
        "runs": runs,
    }


def _read(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"{path}: not found; run the step that writes it (download, prepare or resolve) first")
    return path.read_text()


def _manifest_dataset(path: Path) -> str:
    """The data set a prepared ``manifest.json`` belongs to (its ``dataset`` field)."""
    try:
        return str(json.loads(_read(path))["dataset"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not a prepared-data manifest with 'dataset'; rerun 'jointseg prepare'") from None


def markdown_lines(config_path: str | Path | None, manifests: Mapping[str, str | Path]) -> list[str]:
    """Markdown bullet lines for a report: config hash, commit, packages, the hash of each
    data set's prepared ``manifest.json`` (``manifests``: data set -> path)."""
    lines = []
    if config_path and Path(config_path).is_file():
        lines.append(f"- config: `{config_path}` (sha256 `{sha256_file(config_path)}`)")
    state = git_state()
    dirty = " (with uncommitted changes)" if state["dirty"] else ""
    lines.append(f"- code commit: `{state['commit']}`{dirty}")
    lines.append("- packages: " + ", ".join(f"{k} {v}" for k, v in sorted(package_versions().items())))
    for ds, manifest in manifests.items():
        digest = sha256_file(manifest) if Path(manifest).is_file() else "unknown (no prepared manifest)"
        lines.append(f"- data `{ds}`: sha256 of `{manifest}` `{digest}`")
    return lines
