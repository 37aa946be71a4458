"""Artifact upload: without Snakemake's marker files, and by hard link where the store is local.

A paper-preset checkpoint is ~0.8 GB (weights and Adam's two moments); copying
``best.pt`` and ``final.pt`` into ``mlruns/`` costs seconds and doubles the
disk they take. When the run's artifact root is a local folder on the same
file system, a file is hard-linked instead: instant, no extra space. That is
safe because the pipeline replaces files atomically (write, then rename): a
rewrite gives ``results/`` a new file and leaves the artifact's content as
logged. Anything else (a tracking server, another file system) is uploaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from .store import retry

# Snakemake's bookkeeping files inside directory() outputs (.snakemake_timestamp); never artifacts.
MARKER_PREFIX = ".snakemake"


def local_root(artifact_uri: str | None) -> Path | None:
    """The folder of a ``file:`` (or plain path) artifact URI; None for remote stores."""
    if not artifact_uri:
        return None
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and artifact_uri.startswith("/"):
        return Path(artifact_uri)
    return None


def _link(path: Path, root: Path, artifact_path: str | None) -> bool:
    """Hard-link ``path`` to ``root/artifact_path/name``; False if the file system refuses."""
    target = root.joinpath(*(artifact_path or "").split("/")) / path.name
    tmp = target.with_name(f".{target.name}.link-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        os.link(path, tmp)
        os.replace(tmp, target)
    except OSError:  # another device, no hard links (some network file systems), permissions
        tmp.unlink(missing_ok=True)
        return False
    return True


def upload(
    mlclient, run_id: str, path: str | Path, artifact_path: str | None = None, artifact_uri: str | None = None
) -> None:
    """Log a file, or a folder as ``artifact_path`` (default: its name), skipping Snakemake's
    marker files. Files are hard-linked when ``artifact_uri`` (the run's) is local."""
    path = Path(path)
    if path.is_file():
        if path.name.startswith(MARKER_PREFIX):
            return
        root = local_root(artifact_uri)
        if root is None or not _link(path, root, artifact_path):
            retry(mlclient.log_artifact, run_id, str(path), artifact_path)
        return
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: artifact not found")
    target = artifact_path or path.name
    if not any(p.name.startswith(MARKER_PREFIX) for p in path.rglob("*")):
        retry(mlclient.log_artifacts, run_id, str(path), target)
        return
    with tempfile.TemporaryDirectory(prefix="jointseg-artifacts-") as tmp:
        clean = Path(tmp) / path.name
        shutil.copytree(path, clean, ignore=shutil.ignore_patterns(MARKER_PREFIX + "*"))
        retry(mlclient.log_artifacts, run_id, str(clean), target)
