"""``<raw>/.complete.json``: the record that a raw folder is complete.

``{"dataset", "sources": [{"name", "url", "split", "sha256", ...}], "files":
{relpath: {"sha256", "size"}}}`` is written last by ``jointseg download``.
A local folder source is read in place (never copied): its source record
also carries ``"path"`` (absolute) and ``"files"`` (its own file table), and
``prepare`` reads the cases from that path (:func:`source_root`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io_utils import UserError
from .checksums import folder_table

MARKER = ".complete.json"


def _skip(rel: str) -> bool:
    return rel == MARKER or rel.endswith(".part") or ".tmp-" in rel


def file_table(root: Path) -> dict:
    """The file table of a raw folder (without the marker and partial files)."""
    return folder_table(root, skip=_skip, follow_links=False)


def read_marker(raw: str | Path) -> dict | None:
    """The marker dict, or ``None`` when the folder is not complete (or the marker is unreadable)."""
    path = Path(raw) / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _files_present(root: Path, files: dict) -> bool:
    return all((root / rel).is_file() and (root / rel).stat().st_size == info["size"] for rel, info in files.items())


def is_complete(out: Path, sources, expected: dict[str, dict[str, str]]) -> bool:
    """True when the marker lists these sources with the expected digests and every file is there."""
    data = read_marker(out)
    if data is None:
        return False
    recorded = {s["name"]: s for s in data.get("sources", [])}
    for src in sources:
        rec = recorded.get(src.name)
        if rec is None or rec.get("url") != src.url:
            return False
        if any(rec.get(algo) != want for algo, want in expected.get(src.name, {}).items()):
            return False
        if rec.get("path") and not _files_present(Path(rec["path"]), rec.get("files", {})):
            return False
    return _files_present(out, data.get("files", {}))


def source_root(raw: str | Path) -> Path:
    """Where ``prepare`` finds a data set's cases: the raw folder, or its in-place folder source."""
    raw = Path(raw)
    data = read_marker(raw)
    if data is None:
        raise UserError(f"{raw}: not a complete download (no readable {MARKER}); run `jointseg download` first")
    in_place = [s for s in data.get("sources", []) if s.get("path")]
    if not in_place:
        return raw
    root = Path(in_place[0]["path"])
    if not root.is_dir():
        raise UserError(f"{root}: the local source folder of {raw} is gone; restore it or rerun `jointseg download`")
    return root
