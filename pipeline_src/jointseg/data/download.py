"""``jointseg download``: fetch a data set's archives, verify checksums, extract.

    jointseg download DATASET --config config/config.yaml [--out data/raw/DATASET]
    jointseg download --url URL [--url URL ...] --out DIR [--sha256 HEX ...] [--lock FILE]

* http(s) downloads are streamed into ``<file>.part`` with a progress bar,
  resumed with an HTTP ``Range`` request after a cut connection, retried with
  exponential back-off on 5xx/429 answers and time-outs
  (:mod:`jointseg.data.http_fetch`, tenacity), and renamed into place only
  after the checksums check out.
* ``file://`` URLs and local file paths (mirrors, offline copies, the embedded
  demo archives) go through the same code: copied, hashed, verified, extracted.
* A local *folder* (an already-extracted data set, e.g. an nnU-Net raw folder)
  is read in place, never copied: its files are hashed into the marker and
  its folder digest is locked like a file's sha256. It must be the data set's
  only source.
* Every file is checked against the committed lock file (``sha256`` and/or
  ``md5``); the first download records the sha256 and prints it so it can be
  committed.
* Archives are extracted with :func:`jointseg.data.archive.safe_extract`.
* ``<out>/.complete.json`` (sources, every file with size and sha256) is
  written last: its presence means the folder is complete (Snakemake/DVC use
  the folder as one output).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import requests
from tqdm import tqdm

from ..io_utils import UserError, atomic_write_json
from .archive import archive_kind, safe_extract
from .checksums import file_digests, folder_digest, folder_table, pinned, verify
from .errors import write_error
from .http_fetch import http_fetch
from .marker import MARKER, file_table, is_complete
from .sources import Source, load_lock, lock_key, record_lock, resolve_local

__all__ = ["MARKER", "download_dataset", "fetch"]


# --------------------------------------------------------------------------- fetching


def _copy_local(src: Path, part: Path, url: str) -> None:
    if not src.exists():
        raise UserError(f"{src}: source file not found (url '{url}'); check the path or mirror")
    try:
        with (
            open(src, "rb") as fin,
            open(part, "wb") as fout,
            tqdm(
                total=src.stat().st_size,
                unit="B",
                unit_scale=True,
                desc=src.name,
                leave=False,
                mininterval=1.0,
            ) as bar,
        ):
            for block in iter(lambda: fin.read(1 << 20), b""):
                fout.write(block)
                bar.update(len(block))
    except OSError as exc:
        raise write_error(exc, part, url) from None


def fetch_verified(
    url: str,
    dest: str | os.PathLike,
    expected: dict[str, str] | None = None,
    *,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    search: list[Path] | None = None,
    session: requests.Session | None = None,
) -> dict[str, str]:
    """Fetch ``url`` (http(s), file:// or path) to ``dest``; return its digests (sha256, and md5 if pinned).

    The bytes go to ``dest.part`` first (kept across runs so a download resumes)
    and are renamed onto ``dest`` only when every digest in ``expected``
    (``{"sha256"|"md5": hex}``) matches. A mismatch deletes the partial file.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    local = resolve_local(url, search)
    if local is not None:
        if local.is_dir():
            raise UserError(
                f"{local}: is a folder; fetch() copies files (folders are read in place by download_dataset)"
            )
        _copy_local(local, part, url)
    else:
        http_fetch(url, part, retries, timeout, backoff, session or requests.Session())
    expected = expected or {}
    digests = file_digests(part, ("sha256", *(a for a in expected if a != "sha256")))
    try:
        verify(digests, expected, dest.name, url)
    except UserError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return digests


def fetch(
    url: str, dest: str | os.PathLike, expected_sha256: str | None = None, *, expected_md5: str | None = None, **kwargs
) -> str:
    """:func:`fetch_verified` with the digests as arguments; returns the sha256."""
    expected = pinned({"sha256": expected_sha256, "md5": expected_md5})
    return fetch_verified(url, dest, expected, **kwargs)["sha256"]


# --------------------------------------------------------------------------- data sets


def _expected(dataset: str, sources: list[Source], entries: dict, lock) -> dict[str, dict[str, str]]:
    """Per source name, the digests to verify: the lock entry's, and the config's sha256."""
    expected = {}
    for src in sources:
        want = pinned(entries.get(lock_key(dataset, src.name)))
        if src.sha256:
            if want.get("sha256") and want["sha256"] != src.sha256.lower():
                raise UserError(
                    f"{lock}: sha256 of {lock_key(dataset, src.name)} disagrees with the config's "
                    "sha256; fix one of them"
                )
            want["sha256"] = src.sha256.lower()
        expected[src.name] = want
    return expected


def _record(dataset: str, src: Source, lock, entries: dict, digest: str, extra: dict) -> None:
    """Add the sha256 to the lock entry (keeping an md5 already pinned there) and say so."""
    print(
        f"jointseg download: recorded sha256 {digest} for {src.name}"
        + (f" in {lock}; commit that file" if lock else " (no lock file given)")
    )
    if lock:
        key = lock_key(dataset, src.name)
        record_lock(lock, key, {**entries.get(key, {}), "sha256": digest, **extra, "url": src.url})


def _read_folder(src: Source, local: Path, want: dict[str, str]) -> dict:
    """Hash a local folder source in place; its record for the marker."""
    if not any(local.iterdir()):
        raise UserError(f"{local}: source folder is empty")
    if "md5" in want:
        raise UserError(f"{src.url}: is a folder; a lock entry can pin a folder by its sha256 only")
    table = folder_table(local)
    digest = folder_digest(table)
    verify({"sha256": digest}, want, f"folder {local}", src.url)
    return {
        "name": src.name,
        "url": src.url,
        "split": src.split,
        "sha256": digest,
        "path": str(local.resolve()),
        "files": table,
    }


def _fetch_file(src: Source, out: Path, want: dict[str, str], extract: bool, fetch_args: dict) -> dict:
    """Fetch (or reuse) one file source, extract it if it is an archive; its record for the marker."""
    dest = out / src.name
    algos = ("sha256", *(a for a in want if a != "sha256"))
    have = file_digests(dest, algos) if dest.is_file() and want else None
    if have is None or any(have.get(a) != v for a, v in want.items()):
        have = fetch_verified(src.url, dest, want, **fetch_args)
    if extract and archive_kind(dest):
        safe_extract(dest, out)
    return {"name": src.name, "url": src.url, "split": src.split, **have}


def download_dataset(
    dataset: str,
    sources: list[Source],
    out: str | os.PathLike,
    *,
    lock: str | os.PathLike | None = None,
    extract: bool = True,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    search: list[Path] | None = None,
) -> dict:
    """Fetch every source into ``out`` (folders: read in place), verify/record checksums, extract, write the marker.

    Returns the marker dict. Idempotent: a complete folder whose records match
    the lock file is left alone.
    """
    out = Path(out)
    entries = load_lock(lock) if lock else {}
    expected = _expected(dataset, sources, entries, lock)
    folders = {s.name: p for s in sources if (p := resolve_local(s.url, search)) is not None and p.is_dir()}
    if folders and len(sources) > 1:
        raise UserError(
            f"data set '{dataset}': the local folder source {sorted(folders)} must be the only "
            "source (it is read in place); give one folder holding the whole data set"
        )
    if is_complete(out, sources, expected):
        print(f"jointseg download: {out} is complete (checksums in {out / MARKER})")
        return json.loads((out / MARKER).read_text())

    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)  # from here on the folder is not complete
    fetch_args = {"retries": retries, "timeout": timeout, "backoff": backoff, "search": search}
    recorded = []
    for src in tqdm(sources, desc=f"download {dataset}", unit="file", disable=len(sources) < 2):
        want = expected[src.name]
        if src.name in folders:
            rec = _read_folder(src, folders[src.name], want)
            extra = {"files": len(rec["files"])}
        else:
            rec = _fetch_file(src, out, want, extract, fetch_args)
            extra = {"size": (out / src.name).stat().st_size}
        if "sha256" not in want:
            _record(dataset, src, lock, entries, rec["sha256"], extra)
        recorded.append(rec)
    marker = {"dataset": dataset, "sources": recorded, "files": file_table(out)}
    atomic_write_json(out / MARKER, marker)
    print(f"jointseg download: {dataset}: {len(recorded)} source(s), {len(marker['files'])} files in {out}")
    return marker
