"""`jointseg provenance`: code commit, package versions, data hashes, every run's settings."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

from jointseg import provenance
from jointseg.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]


def _layout(tmp_path: Path) -> dict[str, Path]:
    raw = tmp_path / "data" / "raw" / "demo_isic" / ".complete.json"
    manifest = tmp_path / "data" / "prepared" / "demo_isic" / "0123456789" / "manifest.json"
    run_config = tmp_path / "results" / "demo" / "demo_isic" / "joint" / "seed0" / "run_config.json"
    for path in (raw, manifest, run_config):
        path.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({"files": {"a.zip": "ab" * 32}}))
    manifest.write_text(json.dumps({"dataset": "demo_isic", "cases": 3, "num_classes": 2}))
    run_config.write_text(json.dumps({"variant": "joint", "seed": 0}))
    config = tmp_path / "config.yaml"
    config.write_text("study: demo\nseeds: [0]\n")
    return {"raw": raw, "manifest": manifest, "run_config": run_config, "config": config}


def test_provenance_command_records_code_data_and_runs(tmp_path):
    files = _layout(tmp_path)
    out = tmp_path / "summary" / "provenance.json"
    rc = cli_main(
        [
            "provenance",
            "--config",
            str(files["config"]),
            "--out",
            str(out),
            "--raw",
            str(files["raw"]),
            "--manifests",
            str(files["manifest"]),
            "--run-configs",
            str(files["run_config"]),
        ]
    )
    assert rc == 0
    record = json.loads(out.read_text())
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert record["git"]["commit"] == head
    assert isinstance(record["git"]["dirty"], bool)
    assert record["packages"]["numpy"] == metadata.version("numpy")
    assert record["config"] == {"study": "demo", "seeds": [0]}
    data = record["data"]["demo_isic"]
    assert data["raw"] == {"files": {"a.zip": "ab" * 32}}
    assert data["manifest_sha256"] == hashlib.sha256(files["manifest"].read_bytes()).hexdigest()
    assert data["prepared_dir"] == str(files["manifest"].parent)  # which preparation (keyed folder)
    assert record["runs"] == {str(files["run_config"].parent): {"variant": "joint", "seed": 0}}


def test_missing_input_is_a_one_line_error(tmp_path, capsys):
    files = _layout(tmp_path)
    rc = cli_main(
        [
            "provenance",
            "--config",
            str(files["config"]),
            "--out",
            str(tmp_path / "p.json"),
            "--manifests",
            str(tmp_path / "nope" / "manifest.json"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "nope/manifest.json: not found" in err and "Traceback" not in err
    assert not (tmp_path / "p.json").exists()


def test_manifest_without_dataset_is_a_one_line_error(tmp_path, capsys):
    """The manifest names its data set (the folder above it is the preparation key)."""
    files = _layout(tmp_path)
    files["manifest"].write_text(json.dumps({"cases": 3}))
    args = ["provenance", "--config", str(files["config"]), "--out", str(tmp_path / "p.json")]
    assert cli_main([*args, "--manifests", str(files["manifest"])]) == 2
    err = capsys.readouterr().err
    assert "manifest.json: not a prepared-data manifest with 'dataset'" in err and "Traceback" not in err


def test_markdown_lines_name_commit_and_data(tmp_path):
    files = _layout(tmp_path)
    missing = tmp_path / "data" / "prepared" / "demo_msd" / "0123456789" / "manifest.json"
    lines = provenance.markdown_lines(files["config"], {"demo_isic": files["manifest"], "demo_msd": missing})
    text = "\n".join(lines)
    assert provenance.git_commit() in text
    assert hashlib.sha256(files["manifest"].read_bytes()).hexdigest() in text
    assert "`demo_msd`" in text and "unknown (no prepared manifest)" in text
