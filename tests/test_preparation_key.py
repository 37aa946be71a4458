"""Prepared data are keyed by data set and preparation settings: data/prepared/<dataset>/<key>/.

Two studies that prepare the same data set differently (another size, split or
label map) must not overwrite each other's arrays; training-only settings must
not re-prepare anything. Run configs name the keyed folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jointseg import paths
from jointseg.cli import main as cli_main
from jointseg.config import deep_merge, load_config, preparation_key, resolve_run, validate_config

ROOT = Path(__file__).resolve().parents[1]


def _config(**entry) -> dict:
    """A validated config with one data set ``d`` whose entry is updated with ``entry``."""
    base = {"format": "isic", "sources": [{"url": "x.zip"}], "size": [64, 64]}
    return validate_config({"datasets": {"d": deep_merge(base, entry)}})


def _key(**entry) -> str:
    return preparation_key(_config(**entry)["datasets"]["d"])


def test_key_is_short_hex_and_deterministic():
    key = _key()
    assert re.fullmatch(r"[0-9a-f]{10}", key)
    assert _key() == key
    # key order in the entry does not matter (canonical JSON)
    entry = _config()["datasets"]["d"]
    assert preparation_key(dict(reversed(list(entry.items())))) == key


@pytest.mark.parametrize(
    "change",
    [
        {"size": [128, 128]},
        {"split": {"seed": 1}},
        {"split": {"rule": "official"}},
        {"labels": {"0": "background", "1": "lesion"}},
        {"sources": [{"url": "y.zip"}]},
        {"slice_axis": 0},
        {"format": "msd"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_key_changes_with_what_preprocessing_reads(change):
    assert _key(**change) != _key()


@pytest.mark.parametrize(
    "change",
    [{"model": {"preset": "paper"}}, {"train": {"iterations": 7}}, {"description": "another text"}],
    ids=lambda c: next(iter(c)),
)
def test_key_ignores_training_only_settings(change):
    assert _key(**change) == _key()


def test_resolve_run_names_the_keyed_folder_unless_given_one():
    config = _config()
    rc = resolve_run(config, "d", "joint", 0)
    assert rc["prepared_dir"] == str(paths.prepared_dir("data", "d", _key()))
    assert Path(rc["prepared_dir"]).parent == Path("data/prepared/d")
    bigger = resolve_run(_config(size=[128, 128]), "d", "joint", 0)
    assert bigger["prepared_dir"] != rc["prepared_dir"]  # a new size: a new folder, so a retrain
    given = resolve_run(config, "d", "joint", 0, prepared_dir="elsewhere/d")
    assert given["prepared_dir"] == "elsewhere/d"
    assert {k: v for k, v in given.items() if k != "prepared_dir"} == {
        k: v for k, v in rc.items() if k != "prepared_dir"
    }


def test_resolve_cli_takes_the_prepared_folder(tmp_path):
    config_path = ROOT / "config" / "config.yaml"
    args = ["resolve", "--config", str(config_path), "--dataset", "demo_isic", "--variant", "joint", "--seed", "0"]
    assert cli_main([*args, "--out", str(tmp_path / "default.json")]) == 0
    entry = load_config(config_path)["datasets"]["demo_isic"]
    expected = paths.prepared_dir("data", "demo_isic", preparation_key(entry))
    assert json.loads((tmp_path / "default.json").read_text())["prepared_dir"] == str(expected)
    given = tmp_path / "prepared" / "demo_isic"
    assert cli_main([*args, "--prepared", str(given), "--out", str(tmp_path / "given.json")]) == 0
    assert json.loads((tmp_path / "given.json").read_text())["prepared_dir"] == str(given)
