"""Atomic writes leave either the old file or the new one, never a half-written one."""

from __future__ import annotations

import pytest

from jointseg.io_utils import atomic_path, atomic_write_json, sha256_file


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_version(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{")
            raise RuntimeError("killed")
    assert target.read_text() == '{\n  "a": 1\n}\n'


def test_json_is_stable_bytes(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1.5, 2]})
    atomic_write_json(tmp_path / "b.json", {"a": [1.5, 2], "b": 1})
    assert sha256_file(tmp_path / "a.json") == sha256_file(tmp_path / "b.json")
