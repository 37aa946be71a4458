"""Safe extraction of zip and tar archives.

Archives come from the internet, so every member is checked before anything is
written: absolute paths, ``..`` components and links (symbolic or hard) whose
target leaves the extraction folder are refused with a :class:`UserError`
naming the archive and the member. Tar archives additionally go through
Python's ``filter="data"`` (PEP 706) as a second line of defence.
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


def _extract_zip(archive: Path, dest: Path) -> list[str]:
    names = []
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # check everything before writing anything
            target = zf.read(info).decode("utf-8", "replace") if _is_zip_symlink(info) else None
            _check_member(archive, info.filename, target)
        for info in infos:
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


def _extract_tar(archive: Path, dest: Path) -> list[str]:
    names = []
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            link = m.linkname if (m.issym() or m.islnk()) else None
            if m.islnk() and link is not None:
                # hard-link targets are archive paths, relative to the archive root
                _check_member(archive, m.name)
                _check_member(archive, link)
                link = None
            _check_member(archive, m.name, link)
            if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                raise UserError(f"{archive}: refusing to extract member '{m.name}': "
                                "device, fifo or other special file")
        try:
            tf.extractall(dest, members=members, filter="data")
        except tarfile.FilterError as exc:  # pragma: no cover - caught by the checks above
            raise UserError(f"{archive}: refusing to extract: {exc}") from None
        except (tarfile.TarError, EOFError) as exc:
            raise UserError(f"{archive}: corrupt tar archive ({exc}); delete it and download again") from None
        names = [m.name for m in members if not m.isdir()]
    return names


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Extract ``archive`` (zip or any tar) into ``dest`` after checking every member.

    Returns the member names of the files written. Raises :class:`UserError` for
    a hostile member (nothing is written then) or a corrupt archive.
    """
    archive, dest = Path(archive), Path(dest)
    kind = archive_kind(archive)
    if kind is None:
        raise UserError(f"{archive}: not a zip or tar archive (truncated download?); delete it and download again")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        return _extract_zip(archive, dest) if kind == "zip" else _extract_tar(archive, dest)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{archive}: corrupt zip archive ({exc}); delete it and download again") from None
    except OSError as exc:
        raise UserError(f"{archive}: extraction into {dest} failed: {exc}") from None
