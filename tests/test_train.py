"""Training: tiny real runs on the demo data, checkpoint layout, exact resume after kill -9.

The demo archives are prepared at 32x32 (a 4x4 attention grid) so that a few
iterations of the small DenseUNet with joint attention take seconds on a CPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from training_helpers import ROOT, SIZE, THREADS, prepare_demo, run_train, tiny_run_config

from jointseg.cli import main as cli_main
from jointseg.data import loader
from jointseg.training import validate


def train_cmd(rc_path: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jointseg.cli",
        "train",
        "--run-config",
        str(rc_path),
        "--out",
        str(out),
        "--no-mlflow",
        "--no-progress",
    ]


def sub_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "pipeline_src"), "OMP_NUM_THREADS": str(THREADS)}


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    return prepare_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def isic_run(demo_data, tmp_path_factory):
    """An uninterrupted tiny training (in this process)."""
    rc = tiny_run_config(demo_data)
    out = tmp_path_factory.mktemp("run") / "demo_isic" / "joint" / "seed0"
    done = run_train(rc, out)
    return rc, out, done


# ----------------------------------------------------------------------- real training


def test_outputs_and_checkpoint_layout(isic_run):
    rc, out, done = isic_run
    for name in ("latest", "best", "final"):
        assert (out / "checkpoints" / f"{name}.pt").is_file()
    assert not list(out.rglob("*.tmp-*"))
    ckpt = torch.load(out / "checkpoints" / "final.pt", weights_only=True)
    for key in ("model", "model_kwargs", "preprocess", "labels", "step", "optimizer", "scheduler", "rng", "config"):
        assert key in ckpt, key
    assert ckpt["step"] == 6 and ckpt["config"] == rc
    assert ckpt["model_kwargs"]["input_size"] == [SIZE, SIZE] and ckpt["model_kwargs"]["attention"] == "joint"
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0] == "step,loss,lr,val_dice,seconds" and len(lines) == 7
    val_rows = [l.split(",") for l in lines[1:] if l.split(",")[3]]
    assert [r[0] for r in val_rows] == ["3", "6"]
    best = max(float(r[3]) for r in val_rows)
    assert done["best_val_dice"] == pytest.approx(best, abs=1e-6) and 0 <= best <= 1
    record = json.loads((out / "train_done.json").read_text())
    assert record["iterations"] == 6
    assert record["seconds"] > 0 and record["validation_seconds"] > 0  # two validations ran, timed apart
    assert json.loads((out / "run_config.json").read_text()) == rc


def test_n_parameters_is_the_trainable_parameter_count(isic_run):
    from jointseg.models.checkpoint import load_checkpoint, model_from_checkpoint

    _, out, done = isic_run
    model = model_from_checkpoint(load_checkpoint(out / "checkpoints" / "final.pt"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable > 0 and done["n_parameters"] == trainable
    assert json.loads((out / "train_done.json").read_text())["n_parameters"] == trainable


def test_finished_run_is_left_alone_and_changed_config_starts_over(isic_run, tmp_path, capsys):
    rc, out, _ = isic_run
    before = (out / "checkpoints" / "final.pt").stat().st_mtime_ns
    run_train(rc, out)
    assert (out / "checkpoints" / "final.pt").stat().st_mtime_ns == before
    # a folder trained with other settings is not continued: its state is set aside, training restarts
    other = tmp_path / "other"
    (other / "checkpoints").mkdir(parents=True)
    old = (out / "checkpoints" / "latest.pt").read_bytes()
    (other / "checkpoints" / "latest.pt").write_bytes(old)
    changed = json.loads(json.dumps(rc))
    changed["train"]["lr"] = 0.01
    changed["train"]["iterations"] = 2
    done = run_train(changed, other)
    assert "train.lr" in capsys.readouterr().err and done["step"] == 2
    assert (other / "checkpoints" / "latest.stale.pt").read_bytes() == old
    assert torch.load(other / "checkpoints" / "final.pt", weights_only=True)["config"]["train"]["lr"] == 0.01


def test_checkpoint_of_another_network_is_a_clear_error(isic_run, tmp_path):
    from jointseg.io_utils import UserError

    rc, out, _ = isic_run
    ckpt = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    name = next(k for k, v in ckpt["model"].items() if v.ndim == 4)
    ckpt["model"][name] = ckpt["model"][name][:1]  # as if the network code had changed since
    (tmp_path / "checkpoints").mkdir()
    torch.save(ckpt, tmp_path / "checkpoints" / "latest.pt")
    with pytest.raises(UserError, match=f"do not fit the network .*{name}.*--restart"):
        run_train(rc, tmp_path)


def test_bad_run_config_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "run_config.json"
    bad.write_text("{not json")
    assert cli_main(["train", "--run-config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert cli_main(["train", "--out", str(tmp_path / "o")]) == 2


class Crash(Exception):
    """Stands for the process dying right after a checkpoint reached the disk."""


def assert_same_final(reference_out: Path, out: Path) -> None:
    a = torch.load(reference_out / "checkpoints" / "final.pt", weights_only=True)
    b = torch.load(out / "checkpoints" / "final.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["scheduler"] == b["scheduler"]
    strip = lambda p: [l.rsplit(",", 1)[0] for l in p.read_text().splitlines()]  # noqa: E731 (drop seconds)
    assert strip(reference_out / "history.csv") == strip(out / "history.csv")


def test_resume_after_crash_in_process_is_exact(isic_run, tmp_path, monkeypatch):
    """Quick variant: the run dies (an exception) right after its first latest.pt; the rerun
    resumes from it and ends with exactly the weights of the uninterrupted run."""
    from jointseg.training import checkpoint

    rc, reference_out, _ = isic_run
    real_save = checkpoint.save_checkpoint

    def save_then_crash(path, payload):
        real_save(path, payload)
        if Path(path).name == "latest.pt":
            raise Crash(payload["step"])

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_crash)
    out = tmp_path / "crashed"
    with pytest.raises(Crash):
        run_train(rc, out)
    monkeypatch.setattr(checkpoint, "save_checkpoint", real_save)
    assert torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["step"] == 2
    assert not (out / "train_done.json").exists() and not (out / "checkpoints" / "final.pt").exists()

    from jointseg.data.loader import TrainBatches

    seen, real_getitem = [], TrainBatches.__getitem__
    monkeypatch.setattr(TrainBatches, "__getitem__", lambda self, t: seen.append(t) or real_getitem(self, t))
    monkeypatch.setattr(validate, "eval_cases", recording_eval_cases(validations := []))
    run_train(rc, out)
    assert seen == [2, 3, 4, 5]  # resumed, not restarted (a restart would also be identical)
    assert_same_final(reference_out, out)
    # validation (at steps 3 and 6) reads the validation split only, under inference_mode
    assert validations and set(validations) == {("val", True)}


def recording_eval_cases(calls: list):
    """``loader.eval_cases`` that records ``(split, inference mode on?)`` of each case it yields."""
    real = loader.eval_cases

    def wrapper(prepared_dir, split):
        for item in real(prepared_dir, split):
            calls.append((split, torch.is_inference_mode_enabled()))
            yield item

    return wrapper


@pytest.mark.slow
def test_resume_after_kill9_gives_identical_weights(isic_run, tmp_path):
    """SIGKILL a training right after its first latest.pt; rerunning ends bit-identical."""
    rc, reference_out, _ = isic_run
    rc_path = tmp_path / "run_config.json"
    rc_path.write_text(json.dumps(rc))
    out = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(rc_path, out), env=sub_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    latest = out / "checkpoints" / "latest.pt"
    deadline = time.monotonic() + 300
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert latest.exists() and not (out / "train_done.json").exists()
    killed_at = torch.load(latest, weights_only=True)["step"]
    assert 0 < killed_at < 6

    res = subprocess.run(train_cmd(rc_path, out), env=sub_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"resuming from {latest} at step {killed_at}" in res.stderr

    assert_same_final(reference_out, out)


@pytest.mark.slow
def test_sigterm_to_the_process_group_with_loader_workers_saves_and_resumes(isic_run, tmp_path):
    """A time limit's SIGTERM reaches every process of the job, loader workers included: the training
    still finishes its step, saves latest.pt and stops (exit 2); rerunning ends bit-identical."""
    rc, reference_out, _ = isic_run
    rc = json.loads(json.dumps(rc))
    rc["train"]["workers"] = 2
    rc_path = tmp_path / "run_config.json"
    rc_path.write_text(json.dumps(rc))
    out = tmp_path / "terminated"
    proc = subprocess.Popen(
        train_cmd(rc_path, out), env=sub_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    latest = out / "checkpoints" / "latest.pt"
    deadline = time.monotonic() + 300
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)  # as Slurm does: the training and its workers
    err = proc.communicate(timeout=300)[1].decode()
    assert proc.returncode == 2, err
    assert "stopped by SIGTERM at iteration" in err and "latest.pt saved" in err
    stopped_at = torch.load(latest, weights_only=True)["step"]
    assert 0 < stopped_at < 6 and not (out / "train_done.json").exists()

    res = subprocess.run(train_cmd(rc_path, out), env=sub_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"resuming from {latest} at step {stopped_at}" in res.stderr
    assert_same_final(reference_out, out)


@pytest.mark.slow
def test_a_kill_before_the_first_checkpoint_continues_the_same_mlflow_run(demo_data, tmp_path):
    """latest.pt of step 0 records the MLflow run: a rerun after kill -9 continues it, none is duplicated."""
    from mlflow.tracking import MlflowClient

    rc = tiny_run_config(demo_data, iterations=200, checkpoint_every=1000, val_every=1000)
    rc_path = tmp_path / "run_config.json"
    rc_path.write_text(json.dumps(rc))
    out = tmp_path / "killed"
    cmd = [c for c in train_cmd(rc_path, out) if c != "--no-mlflow"]
    env = {**sub_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("JOINTSEG_MLFLOW_PARENT", None)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    latest = out / "checkpoints" / "latest.pt"
    deadline = time.monotonic() + 300
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(latest, weights_only=True)
    assert saved["step"] == 0 and saved["mlflow_run_id"]

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert [(r.info.run_id, r.info.status) for r in runs] == [(saved["mlflow_run_id"], "FINISHED")]
    assert [m.step for m in client.get_metric_history(saved["mlflow_run_id"], "loss")] == list(range(1, 201))


@pytest.mark.slow
def test_training_logs_child_run_to_mlflow(demo_data, tmp_path, monkeypatch):
    """A real training with tracking on: params, per-step metrics, artifacts, logged model."""
    from jointseg import tracking
    from jointseg.training.loop import train

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    rc = tiny_run_config(demo_data, iterations=4)
    parent = tracking.start_parent({"study": rc["study"], "results_dir": "results"})
    monkeypatch.setenv(tracking.PARENT_ENV, parent)  # how the invocation hands its parent run to trainings
    out = tmp_path / "results" / "demo_isic" / "joint" / "seed0"
    done = train(rc, out, progress=False)
    c = tracking.client(tracking.resolve_tracking_uri())
    run = c.get_run(done["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags[tracking.PARENT_TAG] == parent
    assert run.data.params["train.iterations"] == "4" and run.data.tags["data_sha256"] != "unknown"
    assert run.data.params["n_parameters"] == str(done["n_parameters"])
    assert [m.step for m in c.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3, 4]
    assert len(c.get_metric_history(run.info.run_id, "val_dice")) == 2
    artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {"history.csv", "checkpoints", "run_config.json"} <= artifacts
    assert {a.path for a in c.list_artifacts(run.info.run_id, "checkpoints")} >= {"checkpoints/final.pt"}
    import mlflow

    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert models and models[0].source_run_id == run.info.run_id


def test_loader_workers_do_not_change_the_result(isic_run, tmp_path):
    """Background loader processes prefetch the same batches (each a pure function of (seed, t))."""
    rc, reference_out, _ = isic_run
    with_workers = json.loads(json.dumps(rc))
    with_workers["train"]["workers"] = 2
    run_train(with_workers, tmp_path / "workers")
    assert_same_final(reference_out, tmp_path / "workers")
