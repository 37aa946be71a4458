"""Safe extraction of zip and tar archives.

Archives come from the internet, so every member is checked before anything is
written: absolute paths, ``..`` components and links (symbolic or hard) whose
target leaves the extraction folder are refused with a :class:`UserError`
naming the archive and the member. Tar archives additionally go through
Python's ``filter="data"`` (PEP 706) as a second line of defence.

Decompression bombs: an archive whose members declare, in total, more than
``max_ratio`` (100) times its own size uncompressed *and* more than the free
space of the target disk is refused before anything is written. Either
condition alone is normal (a well-compressed volume; a big archive on a small
disk fails with "disk full" and can be resumed), both together are not.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from ..io_utils import UserError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MAX_RATIO = 100  # declared uncompressed size / archive size above which free space is checked


def archive_kind(path: str | os.PathLike) -> str | None:
    """``"zip"``, ``"tar"`` or ``None`` (not an archive), judged by content, not by name."""
    path = Path(path)
    if not path.is_file():
        return None
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        return None
    return None


def _check_member(archive: Path, name: str, link_target: str | None = None) -> None:
    """Refuse a member path (and link target) that would land outside the target folder."""

    def refuse(why: str) -> None:
        raise UserError(
            f"{archive}: refusing to extract member '{name}': {why}. The archive is damaged or "
            "hostile; delete it and download it again from a trusted source."
        )

    norm = name.replace("\\", "/")
    if norm.startswith("/") or PurePosixPath(norm).is_absolute() or (len(norm) > 1 and norm[1] == ":"):
        refuse("absolute path")
    if ".." in PurePosixPath(norm).parts:
        refuse("path contains '..'")
    if link_target is not None:
        target = link_target.replace("\\", "/")
        if target.startswith("/"):
            refuse(f"link to absolute path '{link_target}'")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(norm), target))
        if resolved == ".." or resolved.startswith("../"):
            refuse(f"link '{link_target}' escapes the extraction folder")


def _is_zip_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _check_zip(archive: Path, zf: zipfile.ZipFile) -> int:
    """Check every member before anything is written; return the declared uncompressed size."""
    for info in zf.infolist():
        target = zf.read(info).decode("utf-8", "replace") if _is_zip_symlink(info) else None
        _check_member(archive, info.filename, target)
    return sum(info.file_size for info in zf.infolist())


def _write_zip(zf: zipfile.ZipFile, dest: Path) -> list[str]:
    names = []
    for info in zf.infolist():
        out = dest / info.filename
        if info.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if _is_zip_symlink(info):
            os.symlink(zf.read(info).decode("utf-8"), out)
        else:
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        names.append(info.filename)
    return names


def _check_tar(archive: Path, members: list[tarfile.TarInfo]) -> int:
    """Check every member before anything is written; return the declared uncompressed size."""
    for m in members:
        link = m.linkname if (m.issym() or m.islnk()) else None
        if m.islnk() and link is not None:
            # hard-link targets are archive paths, relative to the archive root
            _check_member(archive, m.name)
            _check_member(archive, link)
            link = None
        _check_member(archive, m.name, link)
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise UserError(f"{archive}: refusing to extract member '{m.name}': device, fifo or other special file")
    return sum(m.size for m in members if m.isfile())


def _write_tar(archive: Path, tf: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path) -> list[str]:
    try:
        tf.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as exc:  # pragma: no cover - caught by the checks above
        raise UserError(f"{archive}: refusing to extract: {exc}") from None
    return [m.name for m in members if not m.isdir()]


def check_size(
    archive: Path, declared: int, dest: Path, max_ratio: float = MAX_RATIO, free_bytes: int | None = None
) -> None:
    """Refuse an archive declaring more than ``max_ratio`` x its size AND more than the free space.

    ``free_bytes`` replaces ``shutil.disk_usage`` (of ``dest`` or its nearest
    existing parent), so tests need not fill a disk.
    """
    packed = max(archive.stat().st_size, 1)
    if declared <= max_ratio * packed:
        return
    if free_bytes is None:
        probe = dest
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free_bytes = shutil.disk_usage(probe).free
    if declared > free_bytes:
        raise UserError(
            f"{archive}: refusing to extract: its members declare {declared} bytes uncompressed, "
            f"{declared / packed:.0f}x the archive's {packed} bytes and more than the {free_bytes} bytes "
            f"free under {dest}. A damaged or hostile archive (decompression bomb); delete it and "
            "download it again from a trusted source, or free disk space if you trust it"
        )


def safe_extract(
    archive: str | os.PathLike, dest: str | os.PathLike, *, max_ratio: float = MAX_RATIO, free_bytes: int | None = None
) -> list[str]:
    """Extract ``archive`` (zip or any tar) into ``dest`` after checking every member and the size.

    Returns the member names of the files written. Raises :class:`UserError` for
    a hostile member or a decompression bomb (nothing is written then, ``dest``
    is not even created) or a corrupt archive.
    """
    archive, dest = Path(archive), Path(dest)
    kind = archive_kind(archive)
    if kind is None:
        raise UserError(f"{archive}: not a zip or tar archive (truncated download?); delete it and download again")
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                check_size(archive, _check_zip(archive, zf), dest, max_ratio, free_bytes)
                dest.mkdir(parents=True, exist_ok=True)
                return _write_zip(zf, dest)
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            check_size(archive, _check_tar(archive, members), dest, max_ratio, free_bytes)
            dest.mkdir(parents=True, exist_ok=True)
            return _write_tar(archive, tf, members, dest)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{archive}: corrupt zip archive ({exc}); delete it and download again") from None
    except (tarfile.TarError, EOFError) as exc:
        raise UserError(f"{archive}: corrupt tar archive ({exc}); delete it and download again") from None
    except OSError as exc:
        raise UserError(f"{archive}: extraction into {dest} failed: {exc}") from None
