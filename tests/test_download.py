"""Download, checksum lock, safe extraction: against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jointseg.cli import main as cli
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
    rc = cli(["download", "demo_msd", "--config", str(root / "config" / "config.yaml"), "--out", str(tmp_path / "raw")])
    assert rc == 0
    marker = json.loads((tmp_path / "raw" / MARKER).read_text())
    lock = json.loads((root / "config" / "checksums.demo.lock.json").read_text())
    assert marker["sources"][0]["sha256"] == lock["demo_msd/Task99_DemoHippocampus.tar"]["sha256"]
    assert (tmp_path / "raw" / "Task99_DemoHippocampus" / "dataset.json").is_file()


# --------------------------------------------------------------------------- md5 pins, retries


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_md5_lock_entry_verified_and_sha256_recorded(server, tmp_path, capsys):
    server.files["/t.tar"] = PAYLOAD
    lock, out = tmp_path / "lock.json", tmp_path / "raw"
    lock.write_text(json.dumps({"raw/t.tar": {"md5": md5(PAYLOAD), "url": server.url + "/t.tar"}}))
    args = ["download", "--url", server.url + "/t.tar", "--out", str(out), "--lock", str(lock)]
    assert cli(args) == 0
    entry = json.loads(lock.read_text())["raw/t.tar"]
    assert entry["md5"] == md5(PAYLOAD) and entry["sha256"] == sha(PAYLOAD)  # md5 kept, sha256 added
    assert json.loads((out / MARKER).read_text())["sources"][0]["md5"] == md5(PAYLOAD)
    # a wrong md5 pin fails, names the file, and leaves neither the file nor a marker
    lock.write_text(json.dumps({"raw/t.tar": {"md5": md5(b"something else"), "url": server.url + "/t.tar"}}))
    (out / "t.tar").unlink()
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "md5" in err and "t.tar" in err
    assert not (out / "t.tar").exists() and not (out / MARKER).exists()


def test_fetch_checks_md5(server, tmp_path):
    server.files["/m.bin"] = PAYLOAD
    assert fetch(server.url + "/m.bin", tmp_path / "m.bin", expected_md5=md5(PAYLOAD)) == sha(PAYLOAD)
    with pytest.raises(UserError, match="expected md5"):
        fetch(server.url + "/m.bin", tmp_path / "n.bin", expected_md5=md5(PAYLOAD[::-1]))
    assert not (tmp_path / "n.bin").exists()


def _monai_decathlon_tables() -> dict:
    """``DecathlonDataset``'s ``resource`` and ``md5`` dicts, read from MONAI's source (importing
    ``monai.apps`` takes seconds)."""
    import ast
    import importlib.util

    path = Path(importlib.util.find_spec("monai").submodule_search_locations[0]) / "apps" / "datasets.py"
    cls = next(
        n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef) and n.name == "DecathlonDataset"
    )
    return {
        t.id: ast.literal_eval(n.value)
        for n in cls.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name) and t.id in ("resource", "md5")
    }


def test_paper_lock_pins_task04_with_monais_md5():
    root = Path(__file__).resolve().parents[1]
    entry = json.loads((root / "config" / "checksums.lock.json").read_text())["msd_hippocampus/Task04_Hippocampus.tar"]
    monai = _monai_decathlon_tables()
    assert entry["md5"] == monai["md5"]["Task04_Hippocampus"]
    assert entry["url"] == monai["resource"]["Task04_Hippocampus"]


def test_transient_errors_give_up_after_the_retries(server, tmp_path):
    server.files["/x.bin"] = PAYLOAD
    server.faults["/x.bin"] = ["503"] * 10
    with pytest.raises(UserError, match="giving up after 2 retries"):
        fetch(server.url + "/x.bin", tmp_path / "x.bin", sha(PAYLOAD), retries=2, backoff=0.01)
    assert len([p for p, _ in server.log if p == "/x.bin"]) == 3  # the first try and 2 retries
    assert not (tmp_path / "x.bin").exists()


# --------------------------------------------------------------------------- local folder sources


def test_local_folder_read_in_place_and_locked(tmp_path, capsys):
    from jointseg.data.marker import source_root

    folder = tmp_path / "mydata"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.txt").write_text("beta")
    lock, out = tmp_path / "lock.json", tmp_path / "raw"
    args = ["download", "--url", str(folder), "--out", str(out), "--lock", str(lock)]
    assert cli(args) == 0
    marker = json.loads((out / MARKER).read_text())
    rec = marker["sources"][0]
    assert rec["path"] == str(folder.resolve())
    assert rec["files"] == {
        "a.txt": {"sha256": sha(b"alpha"), "size": 5},
        "sub/b.txt": {"sha256": sha(b"beta"), "size": 4},
    }
    assert sorted(p.name for p in out.iterdir()) == [MARKER]  # nothing copied
    assert json.loads(lock.read_text())["raw/mydata"]["sha256"] == rec["sha256"]
    assert source_root(out) == folder.resolve()
    # the folder changes: a fresh download fails against the locked folder digest
    (folder / "a.txt").write_text("ALPHA")
    (out / MARKER).unlink()
    capsys.readouterr()
    assert cli(args) == 2
    assert "checksum mismatch" in capsys.readouterr().err and not (out / MARKER).exists()


def test_local_folder_must_be_the_only_source(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "x").write_text("x")
    other = tmp_path / "f.bin"
    other.write_bytes(b"f")
    sources = [Source(url=str(folder), name="d"), Source(url=str(other), name="f.bin")]
    with pytest.raises(UserError, match="only source"):
        download_dataset("ds", sources, tmp_path / "raw")
