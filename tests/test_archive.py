"""Safe extraction: hostile members (paths, links) and decompression bombs are refused before
anything is written."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from jointseg.data.archive import safe_extract
from jointseg.io_utils import UserError

# --------------------------------------------------------------------------- hostile archives


def _zip(path: Path, name: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr(name, "evil")
    return path


def _tar(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 4
        tf.addfile(ok, io.BytesIO(b"fine"))
        tf.addfile(member, io.BytesIO(data) if data else None)
    return path


@pytest.mark.parametrize(
    "kind", ["zip_dotdot", "zip_absolute", "tar_dotdot", "tar_absolute", "tar_symlink", "tar_hardlink", "zip_symlink"]
)
def test_hostile_archive_refused(tmp_path, kind):
    src = tmp_path / "src"
    src.mkdir()
    if kind == "zip_dotdot":
        archive = _zip(src / "a.zip", "../x")
    elif kind == "zip_absolute":
        archive = _zip(src / "a.zip", "/tmp/x-absolute")
    elif kind == "zip_symlink":
        archive = src / "a.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            info = zipfile.ZipInfo("link")
            info.create_system = 3
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "../../outside")
    else:
        name = {"tar_dotdot": "../x", "tar_absolute": "/tmp/x-absolute"}.get(kind, "link")
        member = tarfile.TarInfo(name)
        data = b""
        if kind == "tar_symlink":
            member.type, member.linkname = tarfile.SYMTYPE, "../../outside"
        elif kind == "tar_hardlink":
            member.type, member.linkname = tarfile.LNKTYPE, "../outside"
        else:
            data = b"evil"
            member.size = 4
        archive = _tar(src / "a.tar", member, data)
    dest = tmp_path / "dest"
    with pytest.raises(UserError, match="refusing") as err:
        safe_extract(archive, dest)
    assert str(archive) in str(err.value)
    assert not (dest / "ok.txt").exists()  # checked before anything is written
    assert not (tmp_path / "x").exists() and not Path("/tmp/x-absolute").exists()


def test_internal_symlink_allowed(tmp_path):
    member = tarfile.TarInfo("sub/link")
    member.type, member.linkname = tarfile.SYMTYPE, "../ok.txt"
    archive = _tar(tmp_path / "a.tar", member)
    safe_extract(archive, tmp_path / "dest")
    assert os.path.islink(tmp_path / "dest" / "sub" / "link")
    assert (tmp_path / "dest" / "sub" / "link").read_text() == "fine"


# --------------------------------------------------------------------------- decompression bombs


def _bomb(path: Path, kind: str) -> Path:
    zeros = bytes(300_000)  # compresses to a few hundred bytes: ratio far above 100
    if kind == "zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("zeros.bin", zeros)
    else:
        with tarfile.open(path, "w:gz") as tf:
            info = tarfile.TarInfo("zeros.bin")
            info.size = len(zeros)
            tf.addfile(info, io.BytesIO(zeros))
    assert path.stat().st_size * 100 < len(zeros)
    return path


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_decompression_bomb_refused(tmp_path, kind):
    archive = _bomb(tmp_path / f"bomb.{kind}", kind)
    dest = tmp_path / "dest"
    with pytest.raises(UserError, match="decompression bomb") as err:
        safe_extract(archive, dest, free_bytes=100_000)  # less free space than the 300 kB declared
    assert str(archive) in str(err.value) and "300000" in str(err.value)
    assert not dest.exists()  # nothing left behind
    # the same archive is fine when the disk can hold it: a high ratio alone is no reason to refuse
    assert safe_extract(archive, dest, free_bytes=10_000_000) == ["zeros.bin"]
    assert (dest / "zeros.bin").stat().st_size == 300_000
