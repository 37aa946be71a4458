"""best.pt survives a forced rerun of `train`: Snakemake deletes the outputs (final.pt, best.pt,
history.csv) before it reruns a job, training resumes at its last step, and the best checkpoint
must come back as it was, never the final weights under its name."""

from __future__ import annotations

import json

import pytest
import torch
from training_helpers import prepare_demo, tiny_run_config

from jointseg.cli import main as cli_main
from jointseg.training import validate


@pytest.fixture
def scripted_validation(monkeypatch):
    """Validation Dice from a script, so that the best step is known (not the last one)."""
    scores: list[float] = []
    monkeypatch.setattr(validate, "validation_dice", lambda *a, **k: scores.pop(0))
    return scores


def _train(rc_path, out, *extra) -> int:
    args = ["train", "--run-config", str(rc_path), "--out", str(out), "--no-mlflow", "--no-progress", *extra]
    return cli_main(args)


def test_best_checkpoint_survives_deleted_outputs_and_a_restart_drops_it(tmp_path, scripted_validation):
    data = prepare_demo(tmp_path, ("demo_isic",))
    rc = tiny_run_config(data, iterations=6, val_every=2, checkpoint_every=2)
    rc_path, out = tmp_path / "run_config.json", tmp_path / "run"
    rc_path.write_text(json.dumps(rc))
    ckpts = out / "checkpoints"
    scripted_validation.extend([0.5, 0.9, 0.4])  # steps 2, 4, 6: the best is step 4
    assert _train(rc_path, out) == 0
    best = torch.load(ckpts / "best.pt", weights_only=True)
    final = torch.load(ckpts / "final.pt", weights_only=True)
    assert best["best"] == {"dice": 0.9, "step": 4} and best["step"] == 4 and final["step"] == 6
    assert any(not torch.equal(best["model"][k], final["model"][k]) for k in best["model"])

    for name in ("final.pt", "best.pt"):  # what Snakemake does before --forcerun
        (ckpts / name).unlink()
    (out / "history.csv").unlink()
    assert _train(rc_path, out) == 0  # resumes at step 6 from latest.pt: no validation runs
    again = torch.load(ckpts / "best.pt", weights_only=True)
    assert again["step"] == 4 and again["best"] == {"dice": 0.9, "step": 4}
    assert again["model"].keys() == best["model"].keys()
    assert all(torch.equal(again["model"][k], best["model"][k]) for k in best["model"])
    assert json.loads((out / "train_done.json").read_text())["best_step"] == 4
    assert (out / "history.csv").read_text().count("\n") == 7

    scripted_validation.extend([0.3, 0.2, 0.1])  # a new training: its own best, none of the old one's
    assert _train(rc_path, out, "--restart") == 0
    fresh = torch.load(ckpts / "best.pt", weights_only=True)
    assert fresh["best"] == {"dice": 0.3, "step": 2} and fresh["step"] == 2
    assert (ckpts / "best.pt").samefile(ckpts / "best.kept.pt") and not scripted_validation
