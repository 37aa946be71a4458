"""Download, checksum lock, safe extraction: against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jointseg.cli import main as cli
from jointseg.data.archive import safe_extract
from jointseg.data.download import MARKER, download_dataset, fetch
from jointseg.data.sources import Source
from jointseg.io_utils import UserError

PAYLOAD = bytes(range(256)) * 2000  # 512 kB


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; ``server.faults[path]`` is a list of one-shot faults ("cut", "503")."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        fault = srv.faults.get(self.path, [])
        if fault and fault[0] == "503":
            fault.pop(0)
            self.send_error(503)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if fault and fault[0] == "cut":
            fault.pop(0)
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.faults, srv.log = {}, {}, []
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_cut_connection_resumes_with_range(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.faults["/data.bin"] = ["cut"]
    digest = fetch(server.url + "/data.bin", tmp_path / "data.bin", sha(PAYLOAD), backoff=0.01)
    assert digest == sha(PAYLOAD)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD
    ranges = [r for p, r in server.log if p == "/data.bin"]
    assert ranges[0] is None and ranges[1] is not None
    assert int(ranges[1].split("=")[1].rstrip("-")) > 0  # resumed, not restarted
    assert not (tmp_path / "data.bin.part").exists()


def test_503_is_retried(server, tmp_path):
    server.files["/x.bin"] = PAYLOAD
    server.faults["/x.bin"] = ["503", "503"]
    fetch(server.url + "/x.bin", tmp_path / "x.bin", sha(PAYLOAD), backoff=0.01)
    assert (tmp_path / "x.bin").read_bytes() == PAYLOAD
    assert len([p for p, _ in server.log if p == "/x.bin"]) == 3


def test_flipped_byte_fails_checksum(server, tmp_path):
    bad = bytearray(PAYLOAD)
    bad[12345] ^= 0x01
    server.files["/x.bin"] = bytes(bad)
    with pytest.raises(UserError, match="checksum mismatch") as err:
        fetch(server.url + "/x.bin", tmp_path / "x.bin", sha(PAYLOAD), backoff=0.01)
    assert server.url + "/x.bin" in str(err.value) and "x.bin" in str(err.value)
    assert not (tmp_path / "x.bin").exists() and not (tmp_path / "x.bin.part").exists()


def test_404_fails_clearly_via_cli(server, tmp_path, capsys):
    rc = cli(["download", "--url", server.url + "/nope.zip", "--out", str(tmp_path / "raw")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "404" in err and server.url + "/nope.zip" in err and "nope.zip" in err
    assert not (tmp_path / "raw" / MARKER).exists()


def test_lock_recorded_then_verified(server, tmp_path, capsys):
    server.files["/a.bin"] = PAYLOAD
    lock, out = tmp_path / "lock.json", tmp_path / "raw"
    args = ["download", "--url", server.url + "/a.bin", "--out", str(out), "--lock", str(lock)]
    assert cli(args) == 0
    assert "recorded sha256" in capsys.readouterr().out
    entry = json.loads(lock.read_text())["raw/a.bin"]
    assert entry["sha256"] == sha(PAYLOAD) and entry["size"] == len(PAYLOAD)
    marker = json.loads((out / MARKER).read_text())
    assert marker["files"]["a.bin"]["sha256"] == sha(PAYLOAD)
    # the upstream file changes: the next download must fail against the lock
    server.files["/a.bin"] = PAYLOAD[::-1]
    (out / "a.bin").unlink()
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "a.bin" in err
    assert not (out / MARKER).exists()


def test_file_url_and_extraction(tmp_path):
    archive = tmp_path / "src" / "d.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("top/a.txt", "hello")
    out = tmp_path / "raw"
    marker = download_dataset("d", [Source(url=archive.as_uri(), name="d.zip")], out)
    assert (out / "top" / "a.txt").read_text() == "hello"
    assert set(marker["files"]) == {"d.zip", "top/a.txt"}
    # idempotent: a second call leaves the complete folder alone
    assert download_dataset("d", [Source(url=archive.as_uri(), name="d.zip")], out) == marker


def test_demo_archive_verified_against_committed_lock(tmp_path):
    root = Path(__file__).resolve().parents[1]
    rc = cli(["download", "demo_msd", "--config", str(root / "config" / "config.yaml"),
              "--out", str(tmp_path / "raw")])
    assert rc == 0
    marker = json.loads((tmp_path / "raw" / MARKER).read_text())
    lock = json.loads((root / "config" / "checksums.demo.lock.json").read_text())
    assert marker["sources"][0]["sha256"] == lock["demo_msd/Task99_DemoHippocampus.tar"]["sha256"]
    assert (tmp_path / "raw" / "Task99_DemoHippocampus" / "dataset.json").is_file()


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


@pytest.mark.parametrize("kind", ["zip_dotdot", "zip_absolute", "tar_dotdot", "tar_absolute", "tar_symlink",
                                  "tar_hardlink", "zip_symlink"])
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
