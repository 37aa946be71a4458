"""The AMP matrix: every attention variant and every baseline trains and predicts under mixed precision.

Each entry goes through the real CLI, in this process (``jointseg.cli.main``
with an argv: what the workflow runs, without a new interpreter per command):
``jointseg resolve`` -> ``jointseg train --run-config`` (3 iterations on the
demo ISIC phantoms at 32x32, validating at the end) -> ``jointseg predict``,
under ``train.amp: bf16`` and under ``fp16`` + GradScaler, both as CPU autocast
(the attention code is the same as under CUDA's). The entries come from the
registries (``VARIANTS`` without ``custom``, the architectures' ``baselines()``), so variants
and networks added later join the matrix by themselves.

Checked: finite losses; three optimiser steps applied with finite gradients
(Adam's step count is 3 and its moments finite; a step the GradScaler skips
does not count); the GradScaler's scale unchanged (a skipped step halves it);
finite weights; a prediction per test image, made in fp32 for an fp16
checkpoint on the CPU.

The GradScaler starts at a scale that is sane for these tiny runs, 2^4. At 32x32
the small DenseUNet's last block sees 1x1 maps, so its BatchNorms normalise 2
values per channel (batch 2): their exact gradient is zero, and fp16's rounding
noise, divided by a tiny standard deviation, reaches ~150 in the stem's weight
gradients. At PyTorch's default 2^16 those overflow fp16, and the scaler rightly
skips steps while it backs off. (The fp16 loss bug skipped steps at every scale
>= 2^16 whatever the gradients; the losses now run in fp32, tests/test_precision.py.) The loss after 3 iterations of every entry is
printed as a table: ``pytest tests/test_amp_matrix.py -s``.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from training_helpers import prepare_demo

from jointseg.architectures import baselines
from jointseg.cli import main as cli_main
from jointseg.inference import predict as predict_module
from jointseg.models import network_class
from jointseg.training import build as build_module
from jointseg.variants import VARIANTS

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = [v for v in VARIANTS if v != "custom"] + list(baselines())
PRECISIONS = ("bf16", "fp16")
ITERATIONS = 3
SANE_SCALE = 2.0**4
RESULTS: list[tuple[str, str, str, float]] = []


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The demo ISIC phantoms prepared at 32x32, and a folder ``few`` of three of its test images."""
    out = prepare_demo(tmp_path_factory.mktemp("amp"), ("demo_isic",)) / "prepared" / "demo_isic"
    (out / "few").mkdir()
    for image in sorted((out / "test" / "images").iterdir())[:3]:
        shutil.copy2(image, out / "few" / image.name)
    return out


@pytest.fixture(scope="module", autouse=True)
def matrix_table():
    """Print the matrix (entry x precision -> result, loss after 3 iterations) when the module is done."""
    yield
    print("\n| entry | amp | result | loss after 3 iterations |\n|---|---|---|---:|")
    for entry, amp, result, loss in RESULTS:
        print(f"| {entry} | {amp} | {result} | {loss:.5f} |")


def test_the_matrix_covers_the_registries():
    assert {"none", "pointwise", "self", "joint", "joint_sum", "parallel"} <= set(ENTRIES)
    assert "unet" in ENTRIES and "custom" not in ENTRIES
    assert all(issubclass(network_class(b), torch.nn.Module) for b in baselines())  # build_model knows each


def _train_settings(amp: str) -> dict:
    return {
        "datasets": {"demo_isic": {"size": [32, 32]}},
        "train": {
            "iterations": ITERATIONS,
            "val_every": ITERATIONS,
            "checkpoint_every": ITERATIONS,
            "batch_size": 2,
            "threads": 1,
            "amp": amp,
        },
    }


def _resolve_and_train(entry: str, amp: str, prepared: Path, out: Path) -> None:
    rc = out / "run_config.json"
    selection = ["--config", str(ROOT / "config" / "config.yaml"), "--dataset", "demo_isic", "--variant", entry]
    settings = json.dumps(_train_settings(amp))  # the demo config's model, 3 tiny fp16/bf16 iterations
    resolve = ["resolve", *selection, "--seed", "0", "--set", settings, "--prepared", str(prepared), "--out", str(rc)]
    assert cli_main(resolve) == 0
    assert cli_main(["train", "--run-config", str(rc), "--out", str(out), "--no-mlflow", "--no-progress"]) == 0


def _check_training(out: Path, amp: str) -> float:
    """The assertions on one trained entry; returns its last loss."""
    rows = list(csv.DictReader((out / "history.csv").open()))
    losses = [float(r["loss"]) for r in rows]
    assert len(losses) == ITERATIONS and all(math.isfinite(x) for x in losses), losses
    final = torch.load(out / "checkpoints" / "final.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in final["model"].values() if t.is_floating_point())
    states = final["optimizer"]["state"].values()
    assert states and all(int(s["step"]) == ITERATIONS for s in states)  # no step skipped
    assert all(torch.isfinite(s[k]).all() for s in states for k in ("exp_avg", "exp_avg_sq"))
    if amp == "fp16":
        assert final["scaler"]["scale"] == SANE_SCALE  # the scale never dropped: no inf/NaN gradient
    else:
        assert final["scaler"] is None
    return losses[-1]


@pytest.mark.parametrize("amp", PRECISIONS)
@pytest.mark.parametrize("entry", ENTRIES)
def test_train_and_predict_under_amp(entry, amp, prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(build_module, "GRAD_SCALE_INIT", SANE_SCALE)
    out = tmp_path / entry
    _resolve_and_train(entry, amp, prepared, out)
    loss = _check_training(out, amp)
    used = []  # the precision each prediction ran with

    def spy(model, array, roi, device, precision=None, **kw):
        used.append(precision.dtype)
        return sliding(model, array, roi, device, precision, **kw)

    sliding = predict_module.sliding_probabilities
    monkeypatch.setattr(predict_module, "sliding_probabilities", spy)
    predict = ["predict", "--checkpoint", str(out / "checkpoints" / "final.pt"), "--input", str(prepared / "few")]
    assert cli_main([*predict, "--out", str(out / "pred"), "--no-progress", "--threads", "1"]) == 0
    assert len(list((out / "pred").glob("*.png"))) == 3
    assert used == [None if amp == "fp16" else torch.bfloat16] * 3  # fp16 on a CPU predicts in fp32
    RESULTS.append((entry, amp, "pass", loss))
    print(f"AMP matrix: {entry} {amp} pass, loss after {ITERATIONS} iterations {loss:.5f}")
