"""Checksums of downloaded files and of local source folders.

The lock file pins a file by ``sha256`` or ``md5`` (whichever an entry gives;
both are checked when both are there). ``md5`` exists because some publishers
only give that (the MSD archives' md5s are the ones MONAI ships); a first
download still records the sha256 beside it. A local folder source is pinned
by one sha256 over its sorted file table (:func:`folder_digest`), so a folder
is "hashed like a download".
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..io_utils import UserError

DIGESTS = ("sha256", "md5")  # the algorithms a lock entry may pin


def file_digests(path: str | os.PathLike, algorithms=("sha256",), chunk: int = 1 << 20) -> dict[str, str]:
    """Hex digests of one file, all algorithms computed in a single read."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            for h in hashers.values():
                h.update(block)
    return {name: h.hexdigest() for name, h in hashers.items()}


def pinned(entry: dict | None) -> dict[str, str]:
    """The digests a lock entry (or config source) pins: ``{"sha256"|"md5": lower-case hex}``."""
    entry = entry or {}
    return {a: str(entry[a]).lower() for a in DIGESTS if entry.get(a)}


def verify(got: dict[str, str], expected: dict[str, str], what: str, url: str) -> None:
    """Raise a :class:`UserError` naming ``what`` when a pinned digest differs."""
    for algo, want in expected.items():
        if got.get(algo) != want:
            raise UserError(
                f"{what} from {url}: checksum mismatch (expected {algo} {want}, got {got.get(algo)}). "
                "The download is corrupt (rerun) or the file changed upstream; if you trust the new file, "
                "remove its entry from the lock file and rerun to record the new checksum"
            )


def folder_table(root: str | os.PathLike, skip=lambda rel: False, follow_links: bool = True) -> dict[str, dict]:
    """``{relative path: {"sha256", "size"}}`` of every regular file below ``root`` (sorted).

    ``follow_links``: hash what symbolic links point to (a user's data folder
    may be built from links); otherwise links are left out.
    """
    root = Path(root)
    table, seen = {}, set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_links):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link cycle: walk each real folder once
            dirnames.clear()
            continue
        seen.add(real)
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if skip(rel) or not path.is_file() or (not follow_links and path.is_symlink()):
                continue
            table[rel] = {"sha256": file_digests(path)["sha256"], "size": path.stat().st_size}
    return dict(sorted(table.items()))


def folder_digest(table: dict[str, dict]) -> str:
    """One sha256 for a folder: of its file table as canonical JSON (paths, sizes, file sha256s)."""
    text = json.dumps(table, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
