"""Data-set sources: config entries, URL resolution and the checksum lock file.

A data set is one entry of ``datasets:`` in the study config (see the schema's
``$defs/dataset``): a list of sources (``url`` may be ``http(s)://``,
``file://`` or a local path), the adapter ``format`` that knows the layout, the
label map, the split rule and the training size. Nothing here touches the
network.

The lock file (``lock_file``, committed to git) maps ``"<dataset>/<file name>"``
to ``{"sha256" and/or "md5", "size", "url"}``. Whichever digests an entry
gives are verified; the first download records the sha256 (adding it to an
md5-only entry). A local folder source is pinned by its folder digest
(:func:`jointseg.data.checksums.folder_digest`) under ``sha256``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..io_utils import UserError, atomic_write_json

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../pipeline_src/jointseg
DEMO_DIR = Path(__file__).resolve().parent / "demo"


@dataclass(frozen=True)
class Source:
    """One file (or folder) to fetch into ``data/raw/<dataset>/<name>``."""

    url: str
    name: str
    split: str = "all"
    sha256: str | None = None

    @property
    def is_remote(self) -> bool:
        return urlparse(self.url).scheme in ("http", "https")


def basename_of(url: str) -> str:
    """The file name a URL or path ends in (query strings dropped)."""
    parsed = urlparse(url)
    path = unquote(parsed.path) if parsed.scheme in ("http", "https", "file") else url
    name = Path(path.rstrip("/")).name
    if not name:
        raise UserError(f"cannot derive a file name from '{url}'; give the source a 'name'")
    return name


def sources_of(entry: dict) -> list[Source]:
    """The :class:`Source` list of one data-set config entry."""
    out = []
    for src in entry["sources"]:
        out.append(
            Source(
                url=src["url"],
                name=src.get("name") or basename_of(src["url"]),
                split=src["split"],  # schema-filled
                sha256=src["sha256"],
            )
        )
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise UserError(f"two sources share a file name in {names}; set distinct 'name's")
    return out


def resolve_local(url: str, search: list[Path] | None = None) -> Path | None:
    """Path of a ``file://`` URL or local path; ``None`` for http(s).

    Relative paths are looked up in the current folder (the project root when
    run by Snakemake), then in ``search`` folders, then inside the installed
    package (so ``pipeline_src/jointseg/data/demo/...`` works from anywhere).
    The first existing candidate wins; if none exists the first one is returned
    so the error names it.
    """
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise UserError(f"unsupported URL scheme '{parsed.scheme}' in '{url}'; use http(s)://, file:// or a path")
    path = Path(url).expanduser()
    if path.is_absolute():
        return path
    candidates = [Path.cwd() / path] + [Path(s) / path for s in (search or [])]
    parts = path.parts
    if "jointseg" in parts:  # a path into the package source tree
        candidates.append(PACKAGE_DIR.joinpath(*parts[parts.index("jointseg") + 1 :]))
    for cand in candidates:
        if cand.exists():
            return cand
    return candidates[0]


def load_lock(path: str | os.PathLike) -> dict:
    """The lock file's entries (empty when the file does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read checksum lock file ({exc}); fix or delete it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: checksum lock file must hold a JSON object")
    return data


def record_lock(path: str | os.PathLike, key: str, entry: dict) -> None:
    """Add or replace one entry of the lock file (atomically, sorted keys)."""
    data = load_lock(path)
    data[key] = entry
    atomic_write_json(path, data)


def lock_key(dataset: str, name: str) -> str:
    return f"{dataset}/{name}"
