"""Training pieces without a training run: lr schedules, losses, device settings, RNG state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from jointseg import device
from jointseg.io_utils import UserError
from jointseg.models.checkpoint import load_checkpoint
from jointseg.training import checkpoint, losses, schedule
from jointseg.training.state import changed_keys


def adam(lr: float) -> torch.optim.Adam:
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def lrs_of(opt: torch.optim.Optimizer, sched, steps: int) -> list[float]:
    """The lr each of ``steps`` iterations uses (read before the update, as training logs it)."""
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


class OldPoly:
    """The lambda that earlier versions gave LambdaLR for ``poly`` (its attributes are what
    their ``latest.pt`` files hold): ``(1 - t/T) ** 0.9``."""

    def __init__(self, total: int, power: float) -> None:
        self.total, self.power = total, power

    def __call__(self, t: int) -> float:
        return max(0.0, 1.0 - t / self.total) ** self.power


@pytest.mark.parametrize("lr, total", [(1e-3, 30000), (1.0, 1000), (0.01, 7)])
def test_poly_is_polynomial_lr_and_equals_the_closed_form(lr, total):
    opt = adam(lr)
    sched = schedule.build_scheduler("poly", opt, total)
    assert isinstance(sched, torch.optim.lr_scheduler.PolynomialLR) and sched.power == 0.9
    got = lrs_of(opt, sched, total)
    expected = [lr * (1 - t / total) ** 0.9 for t in range(total)]
    assert max(abs(a - b) for a, b in zip(got, expected)) <= 1e-12
    assert got[0] == lr and opt.param_groups[0]["lr"] == 0.0  # ends at exactly zero


def test_constant_schedule_never_moves():
    opt = adam(1e-3)
    sched = schedule.build_scheduler("constant", opt, 50)
    assert set(lrs_of(opt, sched, 200)) == {1e-3}  # also past the nominal end, bit for bit
    with pytest.raises(ValueError, match="unknown scheduler"):
        schedule.build_scheduler("step", opt, 10)


def test_old_poly_checkpoint_state_loads_and_continues_the_same_schedule(tmp_path):
    total, k = 100, 37
    old_opt = adam(1e-3)
    old = torch.optim.lr_scheduler.LambdaLR(old_opt, OldPoly(total, 0.9))
    lrs_of(old_opt, old, k)
    torch.save({"optimizer": old_opt.state_dict(), "scheduler": old.state_dict()}, tmp_path / "latest.pt")
    saved = torch.load(tmp_path / "latest.pt", weights_only=True)  # as a checkpoint is read back

    new_opt = adam(1e-3)
    new = schedule.build_scheduler("poly", new_opt, total)
    new_opt.load_state_dict(saved["optimizer"])
    schedule.load_scheduler_state(new, saved["scheduler"], "latest.pt")
    assert new.last_epoch == k
    got, expected = lrs_of(new_opt, new, total - k), lrs_of(old_opt, old, total - k)
    assert max(abs(a - b) for a, b in zip(got, expected)) <= 1e-12

    other = schedule.build_scheduler("poly", adam(1e-3), 2 * total)  # another run length
    with pytest.raises(UserError, match="latest.pt: its poly schedule .* --restart"):
        schedule.load_scheduler_state(other, saved["scheduler"], "latest.pt")


def test_scheduler_state_of_another_kind_is_a_clear_error():
    cosine = schedule.build_scheduler("cosine", adam(1e-3), 10)
    poly = schedule.build_scheduler("poly", adam(1e-3), 10)
    with pytest.raises(UserError, match="ckpt.pt: its scheduler state lacks .*PolynomialLR.*--restart"):
        schedule.load_scheduler_state(poly, cosine.state_dict(), "ckpt.pt")


def test_optimizer_reads_every_setting_from_the_run_config():
    model = torch.nn.Linear(2, 2)
    opt = schedule.build_optimizer(model, {"lr": 0.02, "betas": [0.8, 0.95], "weight_decay": 0.1}, torch.device("cpu"))
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (0.02, (0.8, 0.95), 0.1)
    with pytest.raises(KeyError):  # no second copy of a default in code
        schedule.build_optimizer(model, {"lr": 0.02, "betas": [0.8, 0.95]}, torch.device("cpu"))


def test_losses():
    logits = torch.zeros(2, 3, 4, 4)
    target = torch.zeros(2, 4, 4, dtype=torch.int64)
    target[:, :2] = 2
    perfect = torch.full((2, 3, 4, 4), -20.0)
    perfect[:, 0] = 20.0
    perfect[:, 0, :2], perfect[:, 2, :2] = -20.0, 20.0
    ce_dice = losses.build_loss("ce_dice")
    assert ce_dice(perfect, target) < 1e-3 < ce_dice(logits, target)
    ce = losses.build_loss("ce")  # the author's: plain softmax cross-entropy, ln K for uniform logits
    assert ce(logits, target).item() == pytest.approx(np.log(3.0))
    assert ce(logits, target).item() < ce_dice(logits, target).item()  # no Dice term added
    with pytest.raises(ValueError, match="unknown loss"):
        losses.build_loss("dice")


def test_device_threads_and_precision(monkeypatch):
    monkeypatch.delenv("SNAKEMAKE_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert device.resolve_threads(None) == 3 and device.resolve_threads(5) == 5
    cpu = torch.device("cpu")
    assert device.select_precision(cpu).name == "fp32"
    # auto: channels_last on a CPU as on CUDA (oneDNN's native layout); on/off force it
    assert device.select_precision(cpu).channels_last and device.select_precision(cpu, "auto", "on").channels_last
    assert not device.select_precision(cpu, "auto", "off").channels_last
    assert not device.select_precision(torch.device("mps"), "off").channels_last
    with pytest.raises(UserError, match="channels_last"):
        device.select_precision(cpu, "auto", "yes")
    assert device.select_precision(cpu, "bf16").dtype is torch.bfloat16
    assert device.select_precision(cpu, "fp16").scaler  # asked for explicitly (tests/test_precision.py)
    with pytest.raises(UserError, match="fp16 needs a CUDA GPU or the CPU"):
        device.select_precision(torch.device("mps"), "fp16")
    with pytest.raises(UserError, match="unknown device"):
        device.select_device("cuda:3")


def test_rng_state_roundtrip(tmp_path):
    device.seed_everything(7)
    state = checkpoint.rng_state()
    path = checkpoint.save_checkpoint(tmp_path / "r.pt", {"rng": state})
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    checkpoint.set_rng_state(torch.load(path, weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_bad_checkpoint_files_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 not a whole file")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "torn.pt")
    torch.save({"rng": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a jointseg checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_changed_keys_ignore_resume_free_settings():
    old = {
        "train": {"lr": 0.001, "threads": 2, "augment": {"enabled": True}},
        "model": {"attention_options": {}},
        "mlflow": {"tracking_uri": "a"},
    }
    new = {
        "train": {"lr": 0.01, "threads": 8, "augment": {"enabled": False}},
        "model": {"attention_options": {}},
        "mlflow": {"tracking_uri": "b"},
    }
    assert changed_keys(old, new) == ["train.augment.enabled", "train.lr"]
    assert changed_keys(old, {**old, "model": {"attention_options": {"k": 3}}}) == [
        "model.attention_options",
        "model.attention_options.k",
    ]
