"""``jointseg download``: fetch a data set's archives, verify checksums, extract.

    jointseg download DATASET --config config/config.yaml [--out data/raw/DATASET]
    jointseg download --url URL [--url URL ...] --out DIR [--sha256 HEX ...] [--lock FILE]

* http(s) downloads are streamed into ``<file>.part`` with a progress bar,
  resumed with an HTTP ``Range`` request after a cut connection, retried with
  exponential back-off on 5xx/429 answers and time-outs, and renamed into
  place only after the sha256 checks out.
* ``file://`` URLs and local paths (mirrors, offline copies, the embedded demo
  archives) go through the same code: copied, hashed, verified, extracted.
* The sha256 of every file is checked against the committed lock file; the
  first download records it there and prints it so it can be committed.
* Archives are extracted with :func:`jointseg.data.archive.safe_extract`.
* ``<out>/.complete.json`` (sources, every file with size and sha256) is
  written last: its presence means the folder is complete (Snakemake/DVC use
  the folder as one output).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sys
import time
from pathlib import Path

import requests
from tqdm import tqdm

from ..io_utils import UserError, atomic_write_json, sha256_file
from .archive import archive_kind, safe_extract
from .sources import Source, basename_of, load_lock, lock_key, record_lock, resolve_local, sources_of

MARKER = ".complete.json"
CHUNK = 1 << 16
_FATAL = {400: "bad request", 401: "authentication required", 403: "access forbidden",
          404: "not found", 410: "gone"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", nargs="?", help="data set name in the config's 'datasets'")
    parser.add_argument("--config", help="study config YAML (with DATASET)")
    parser.add_argument("--out", help="target folder (default <data_dir>/raw/DATASET)")
    parser.add_argument("--url", action="append", default=[],
                        help="without a config: a URL or path to fetch (repeatable)")
    parser.add_argument("--sha256", action="append", default=[],
                        help="expected sha256 of each --url, in the same order")
    parser.add_argument("--lock", help="checksum lock file (default: the data set's lock_file)")
    parser.add_argument("--no-extract", action="store_true", help="keep archives packed")
    parser.add_argument("--retries", type=int, default=5, help="retries per file after a failure")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry")


def main(args: argparse.Namespace) -> int:
    if args.dataset:
        if not args.config:
            raise UserError("DATASET needs --config (or use --url ... --out DIR without a data set)")
        from ..config import load_dataset_entry

        config, entry = load_dataset_entry(args.config, args.dataset)
        out = Path(args.out or Path(config["data_dir"]) / "raw" / args.dataset)
        sources = sources_of(entry)
        search = [Path(args.config).resolve().parent.parent]  # the project root of config/<x>.yaml
        lock = args.lock or _project_file(entry["lock_file"], search[0])
        name = args.dataset
    else:
        if not args.url or not args.out:
            raise UserError("give DATASET --config FILE, or --url URL ... --out DIR")
        if args.sha256 and len(args.sha256) != len(args.url):
            raise UserError(f"{len(args.sha256)} --sha256 values for {len(args.url)} --url values; "
                            "give one per URL or none")
        shas = args.sha256 or [None] * len(args.url)
        sources = [Source(url=u, name=basename_of(u), sha256=s) for u, s in zip(args.url, shas)]
        out = Path(args.out)
        lock, search, name = args.lock, [], out.name
    download_dataset(name, sources, out, lock=lock, extract=not args.no_extract,
                     retries=args.retries, timeout=args.timeout, search=search)
    return 0


def _project_file(path: str, root: Path) -> Path:
    """A relative project path: under the current folder if it exists there, else under ``root``."""
    p = Path(path)
    if p.is_absolute() or p.exists() or not (root / p).exists():
        return p
    return root / p


# --------------------------------------------------------------------------- fetching


def _disk_full(exc: OSError, path: Path, url: str) -> UserError:
    if exc.errno == errno.ENOSPC:
        return UserError(f"disk full while writing {path} (from {url}); free space or choose "
                         "another --out, then rerun (the download resumes)")
    return UserError(f"cannot write {path} (from {url}): {exc}")


def _copy_local(src: Path, part: Path, url: str) -> None:
    if not src.exists():
        raise UserError(f"{src}: source file not found (url '{url}'); check the path or mirror")
    try:
        with open(src, "rb") as fin, open(part, "wb") as fout, tqdm(
            total=src.stat().st_size, unit="B", unit_scale=True, desc=src.name, leave=False,
            mininterval=1.0,
        ) as bar:
            for block in iter(lambda: fin.read(1 << 20), b""):
                fout.write(block)
                bar.update(len(block))
    except OSError as exc:
        raise _disk_full(exc, part, url) from None


def _http_fetch(url: str, part: Path, retries: int, timeout: float, backoff: float,
                session: requests.Session) -> None:
    """Stream ``url`` into ``part``, resuming with ``Range`` and retrying transient failures."""
    failures = 0
    total: int | None = None
    while True:
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        received = 0
        try:
            with session.get(url, stream=True, timeout=timeout, headers=headers) as resp:
                if resp.status_code in _FATAL:
                    raise UserError(
                        f"{url}: HTTP {resp.status_code} ({_FATAL[resp.status_code]}) for {part.name[:-5]}; "
                        "check the URL in the config (the file may have moved), your access rights, "
                        "or point the source at a mirror or local copy"
                    )
                if resp.status_code == 416 and offset:
                    return  # we already hold every byte; the checksum decides
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise requests.HTTPError(f"HTTP {resp.status_code}", response=resp)
                if resp.status_code not in (200, 206):
                    raise UserError(f"{url}: unexpected HTTP {resp.status_code}; check the URL")
                if resp.status_code == 200 and offset:
                    offset = 0  # the server ignored Range: start over
                length = resp.headers.get("Content-Length")
                total = offset + int(length) if length is not None else None
                mode = "ab" if offset else "wb"
                with open(part, mode) as fh, tqdm(
                    total=total, initial=offset, unit="B", unit_scale=True,
                    desc=part.name[:-5], leave=False, mininterval=1.0,
                ) as bar:
                    for block in resp.iter_content(CHUNK):
                        try:  # requests' errors are OSErrors too: only the write is guarded
                            fh.write(block)
                        except OSError as exc:
                            raise _disk_full(exc, part, url) from None
                        received += len(block)
                        bar.update(len(block))
            if total is not None and part.stat().st_size < total:
                raise requests.ConnectionError("connection closed before the end of the file")
            return
        except (requests.ConnectionError, requests.Timeout, requests.HTTPError,
                requests.exceptions.ChunkedEncodingError) as exc:
            failures = 0 if received else failures + 1  # progress resets the budget
            if failures > retries:
                raise UserError(
                    f"{url}: giving up after {retries} retries ({exc}); {part} holds the bytes so far, "
                    "rerun to resume, or download the file by hand and give its path as the source"
                ) from None
            wait = min(backoff * 2 ** max(failures - 1, 0), 60.0)
            print(f"jointseg download: {url}: {exc}; retrying in {wait:.1f}s", file=sys.stderr)
            time.sleep(wait)


def fetch(url: str, dest: str | os.PathLike, expected_sha256: str | None = None, *,
          retries: int = 5, timeout: float = 60.0, backoff: float = 1.0,
          search: list[Path] | None = None, session: requests.Session | None = None) -> str:
    """Fetch ``url`` (http(s), file:// or path) to ``dest``; return its sha256.

    The bytes go to ``dest.part`` first (kept across runs so a download resumes)
    and are renamed onto ``dest`` only when the checksum matches
    ``expected_sha256`` (if given). A mismatch deletes the partial file.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    local = resolve_local(url, search)
    if local is not None:
        if local.is_dir():
            raise UserError(f"{local}: is a folder; fetch() copies files (folders are copied by download_dataset)")
        _copy_local(local, part, url)
    else:
        _http_fetch(url, part, retries, timeout, backoff, session or requests.Session())
    digest = sha256_file(part)
    if expected_sha256 and digest != expected_sha256.lower():
        part.unlink(missing_ok=True)
        raise UserError(
            f"{dest.name} from {url}: checksum mismatch (expected sha256 {expected_sha256}, got {digest}). "
            "The download is corrupt (rerun) or the file changed upstream; if you trust the new file, "
            "remove its entry from the lock file and rerun to record the new checksum"
        )
    os.replace(part, dest)
    return digest


# --------------------------------------------------------------------------- data sets


def _file_table(root: Path) -> dict:
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if rel == MARKER or rel.endswith(".part") or ".tmp-" in rel:
            continue
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return files


def _is_complete(out: Path, sources: list[Source], expected: dict) -> bool:
    """True when the marker lists these sources with the expected checksums and the files exist."""
    marker = out / MARKER
    if not marker.exists():
        return False
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    recorded = {s["name"]: s for s in data.get("sources", [])}
    for src in sources:
        rec = recorded.get(src.name)
        if rec is None or rec.get("url") != src.url:
            return False
        if expected.get(src.name) and rec.get("sha256") != expected[src.name]:
            return False
    return all((out / rel).is_file() and (out / rel).stat().st_size == info["size"]
               for rel, info in data.get("files", {}).items())


def download_dataset(dataset: str, sources: list[Source], out: str | os.PathLike, *,
                     lock: str | os.PathLike | None = None, extract: bool = True,
                     retries: int = 5, timeout: float = 60.0, backoff: float = 1.0,
                     search: list[Path] | None = None) -> dict:
    """Fetch every source into ``out``, verify/record checksums, extract, write the marker.

    Returns the marker dict. Idempotent: a complete folder whose archives match
    the lock file is left alone.
    """
    out = Path(out)
    entries = load_lock(lock) if lock else {}
    expected = {}
    for src in sources:
        locked = entries.get(lock_key(dataset, src.name), {}).get("sha256")
        if src.sha256 and locked and src.sha256.lower() != locked:
            raise UserError(f"{lock}: sha256 of {lock_key(dataset, src.name)} disagrees with the config's "
                            "sha256; fix one of them")
        expected[src.name] = (src.sha256 or locked or "").lower() or None
    if _is_complete(out, sources, expected):
        print(f"jointseg download: {out} is complete (checksums in {out / MARKER})")
        return json.loads((out / MARKER).read_text())

    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)  # from here on the folder is not complete
    recorded = []
    for src in tqdm(sources, desc=f"download {dataset}", unit="file", disable=len(sources) < 2):
        dest = out / src.name
        local = resolve_local(src.url, search)
        if local is not None and local.is_dir():  # an already-extracted offline copy
            if not any(local.iterdir()):
                raise UserError(f"{local}: source folder is empty")
            shutil.copytree(local, dest, dirs_exist_ok=True)
            recorded.append({"name": src.name, "url": src.url, "split": src.split, "sha256": None})
            continue
        want = expected[src.name]
        if dest.is_file() and want and sha256_file(dest) == want:
            digest = want
        else:
            digest = fetch(src.url, dest, want, retries=retries, timeout=timeout,
                           backoff=backoff, search=search)
        if want is None:
            print(f"jointseg download: recorded sha256 {digest} for {src.name}"
                  + (f" in {lock}; commit that file" if lock else " (no lock file given)"))
            if lock:
                record_lock(lock, lock_key(dataset, src.name),
                            {"sha256": digest, "size": dest.stat().st_size, "url": src.url})
        recorded.append({"name": src.name, "url": src.url, "split": src.split, "sha256": digest})
        if extract and archive_kind(dest):
            safe_extract(dest, out)
    marker = {"dataset": dataset, "sources": recorded, "files": _file_table(out)}
    atomic_write_json(out / MARKER, marker)
    print(f"jointseg download: {dataset}: {len(recorded)} source(s), {len(marker['files'])} files in {out}")
    return marker
