"""`jointseg train --run-config F` takes its settings from F alone: `--set` and the --config way's
options are refused with one line, never silently ignored (they once were: a `--set` asking for 4 bf16
iterations trained 450 fp32 ones)."""

from __future__ import annotations

import json

from jointseg.cli import main as cli_main


def test_set_and_selection_options_with_run_config_are_refused(tmp_path, capsys):
    rc = tmp_path / "run_config.json"
    rc.write_text(json.dumps({"study": "s"}))  # never read: the refusal comes first
    out = tmp_path / "out"
    base = ["train", "--run-config", str(rc), "--out", str(out), "--no-mlflow"]
    assert cli_main([*base, "--set", '{"train": {"amp": "bf16", "iterations": 4}}']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--set cannot be combined with --run-config" in err[0] and str(rc) in err[0]
    assert cli_main([*base, "--dataset", "demo_isic", "--seed", "0"]) == 2
    assert "--dataset, --seed cannot be combined" in capsys.readouterr().err
    assert not out.exists()
