"""MLflow tracking, store and child runs: URI precedence, retries, a training's run, artifacts,
parallel writers on one SQLite store.

Real MLflow against SQLite files in temporary folders; no mocks, no network.
Everything is read back through ``mlflow.search_runs``. The parent run of an
invocation is tested in ``test_tracking_parent.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tracking_helpers import artifact_paths, module_store, run_config, search_runs

from jointseg import tracking
from jointseg.tracking import artifacts, store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    yield from module_store(tmp_path_factory)


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.resolve_tracking_uri() == "http://127.0.0.1:5000"
    assert tracking.resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"  # config wins


def test_flatten_and_parent_from_environment(monkeypatch):
    flat = tracking.flatten({"train": {"lr": 0.001, "betas": [0.9, 0.99], "augment": {}}, "seed": 3})
    assert flat == {"train.lr": "0.001", "train.betas": "[0.9, 0.99]", "train.augment": "{}", "seed": "3"}
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    assert tracking.parent_run_id() is None
    monkeypatch.setenv(tracking.PARENT_ENV, " abc123 ")
    assert tracking.parent_run_id() == "abc123"


def test_retry_retries_locks_and_gives_up_on_permanent_errors():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert tracking.retry(flaky, base_delay=0.001) == "ok"
    assert len(calls) == 3

    def broken():
        calls.append(1)
        raise ValueError("(sqlite3.OperationalError) no such table: runs")

    calls.clear()
    with pytest.raises(ValueError):
        tracking.retry(broken, base_delay=0.001)
    assert len(calls) == 1  # not transient: no retry

    def always_locked():
        calls.append(1)
        raise RuntimeError("database is locked")

    calls.clear()
    with pytest.raises(RuntimeError, match="locked"):
        tracking.retry(always_locked, attempts=4, base_delay=0.001)
    assert len(calls) == 4


def test_store_is_created_once_then_stamped(tmp_path):
    """The first client migrates the store under the lock and stamps it; a recreated file is not ready."""
    db = tmp_path / "sub" / "mlflow.db"
    store.client(f"sqlite:///{db}")
    assert store._is_ready(db)
    db.unlink()
    db.write_bytes(b"")
    assert not store._is_ready(db)  # an empty new file is not an initialised store


def test_training_run_is_recorded(mlflow_store, tmp_path, monkeypatch):
    """Tags, params, batched metrics, artifacts without Snakemake markers, the logged model."""
    import mlflow
    import torch

    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    rc = run_config(mlflow_store, study="child")
    tr = tracking.RunTracker(rc, tmp_path)
    assert tr.enabled and tr.run_id
    for step in range(1, 6):
        tr.log_metrics({"loss": 1.0 / step, "val_dice": None if step % 2 else step / 10}, step)
        if step == 3:
            tr.flush()
    folder = tmp_path / "predictions"
    folder.mkdir()
    (folder / "case1.png").write_bytes(b"png")
    (folder / ".snakemake_timestamp").write_text("")
    tr.log_artifact(folder)
    ckpt = tmp_path / "final.pt"
    ckpt.write_bytes(b"weights v1")
    tr.log_artifact(ckpt, "checkpoints")
    tr.log_text("{}", "run_config.json")
    model = torch.nn.Conv2d(3, 2, 1)
    tr.log_model(model, np.zeros((1, 3, 8, 8), np.float32))
    tr.finish()

    runs = search_runs(mlflow_store, "child")
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED"
    assert run["tags.mlflow.runName"] == "demo_isic/joint/seed0"
    assert run["params.train.lr"] == "0.001" and run["params.model.attention"] == "joint"
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    changes = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
    )
    assert run["tags.git_commit"] == head  # the checkout holding the package, whatever the working directory
    assert run["tags.git_dirty"] == str(bool(changes.stdout.strip()))
    assert run["tags.version.torch"] != "not installed"
    assert run["tags.jointseg.owner.pid"] == str(os.getpid())
    assert "tags.mlflow.parentRunId" not in runs.columns or not isinstance(run["tags.mlflow.parentRunId"], str)
    client = tracking.client(mlflow_store)
    assert [m.value for m in client.get_metric_history(tr.run_id, "loss")] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert [m.step for m in client.get_metric_history(tr.run_id, "val_dice")] == [2, 4]
    assert artifact_paths(mlflow_store, tr.run_id) == {
        "predictions/case1.png",
        "run_config.json",
        "checkpoints/final.pt",
    }
    logged = Path(client.get_run(tr.run_id).info.artifact_uri.removeprefix("file://")) / "checkpoints" / "final.pt"
    assert logged.stat().st_ino == ckpt.stat().st_ino  # a local store gets a hard link, not a copy
    ckpt.with_name("final.tmp").write_bytes(b"weights v2")
    os.replace(ckpt.with_name("final.tmp"), ckpt)  # how the pipeline rewrites a checkpoint
    assert logged.read_bytes() == b"weights v1"  # the artifact keeps what was logged
    with mlflow.tracking._tracking_service.utils._use_tracking_uri(mlflow_store):
        models = mlflow.search_logged_models(experiment_ids=[str(run["experiment_id"])], output_format="list")
        assert [m.source_run_id for m in models] == [tr.run_id]
        sig = mlflow.models.get_model_info(models[0].model_uri).signature
    assert sig.inputs.inputs[0].shape == (-1, 3, 8, 8)
    assert sig.outputs.inputs[0].shape == (-1, 2, 8, 8)  # two labels in the run config


def test_resumed_run_reattaches_to_the_current_parent(mlflow_store, tmp_path, monkeypatch):
    """A training resumed in a later invocation continues its run, now under that invocation's parent."""
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    rc = run_config(mlflow_store, study="resume")
    first = tracking.RunTracker(rc, tmp_path)
    first.log_metrics({"loss": 1.0}, 1)
    first.flush()  # then the process dies: the run stays RUNNING
    parent = tracking.start_parent({"study": "resume", "mlflow": {"tracking_uri": mlflow_store}}, tmp_path)
    monkeypatch.setenv(tracking.PARENT_ENV, parent)
    resumed = tracking.RunTracker(rc, tmp_path, resume_run_id=first.run_id)
    assert resumed.run_id == first.run_id
    resumed.log_metrics({"loss": 0.5}, 2)
    resumed.finish()

    runs = search_runs(mlflow_store, "resume").set_index("run_id")
    child = runs.loc[first.run_id]
    assert child["status"] == "FINISHED"
    assert child["tags.mlflow.parentRunId"] == parent
    steps = [m.step for m in tracking.client(mlflow_store).get_metric_history(first.run_id, "loss")]
    assert steps == [1, 2]


def test_only_local_artifact_stores_are_linked():
    assert artifacts.local_root("file:///srv/mlruns/1/abc/artifacts") == Path("/srv/mlruns/1/abc/artifacts")
    assert artifacts.local_root("/srv/mlruns/1/abc/artifacts") == Path("/srv/mlruns/1/abc/artifacts")
    assert artifacts.local_root("mlflow-artifacts:/1/abc/artifacts") is None
    assert artifacts.local_root("s3://bucket/1/abc/artifacts") is None


def test_tracking_failure_warns_and_continues(tmp_path, capsys):
    """An unusable store must not raise into training: one warning line, then a no-op tracker."""
    bad = tmp_path / "not_a_dir"
    bad.write_text("x")
    tr = tracking.RunTracker(run_config(f"sqlite:///{bad}/sub/mlflow.db"), tmp_path)
    err = capsys.readouterr().err
    assert err.startswith("jointseg: warning: MLflow run creation failed") and err.count("\n") == 1
    assert not tr.enabled and tr.run_id is None
    tr.log_metrics({"loss": 1.0}, 1)
    tr.flush()
    tr.log_model(None, np.zeros((1, 3, 8, 8), np.float32))
    tr.finish()


def test_tracking_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv(tracking.DISABLE_ENV, "0")
    tr = tracking.RunTracker(run_config(f"sqlite:///{tmp_path}/mlflow.db"), tmp_path)
    assert not tr.enabled
    tr.finish()
    assert not (tmp_path / "mlflow.db").exists()


WORKER = textwrap.dedent("""
    import sys
    from jointseg.tracking import RunTracker
    variant, steps = sys.argv[1], int(sys.argv[2])
    rc = {"study": "par", "dataset": "d", "variant": variant, "seed": 0, "prepared_dir": "none",
          "size": [8, 8], "labels": {"0": "bg", "1": "fg"}, "model": {"attention": variant},
          "train": {"lr": 0.001}, "mlflow": {"tracking_uri": None}}
    tr = RunTracker(rc, ".")
    assert tr.enabled, "tracker disabled"
    for step in range(1, steps + 1):      # like training: buffer per step, flush at checkpoints
        tr.log_metrics({"loss": 1.0 / step, "lr": 0.001}, step)
        if step % 5 == 0:
            tr.flush()
            tr.log_metrics({"val_dice": step / steps}, step)
    tr.finish()
    print(tr.run_id)
""")


@pytest.mark.slow
def test_four_parallel_writers_lose_nothing(tmp_path):
    """Four processes create runs and log into one *fresh* SQLite store at once."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "pipeline_src"),
        "MLFLOW_TRACKING_URI": "",
        "JOINTSEG_MLFLOW_PARENT": "",
    }
    steps = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, f"v{i}", str(steps)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "failed" not in err, err  # no warn-and-continue: everything was retried successfully
    run_ids = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(run_ids) == 4

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    runs = search_runs(uri, "par")
    assert set(runs["run_id"]) == run_ids
    assert set(runs["status"]) == {"FINISHED"}
    client = tracking.client(uri)
    for run_id in run_ids:
        assert len(client.get_metric_history(run_id, "loss")) == steps
        assert len(client.get_metric_history(run_id, "lr")) == steps
        assert len(client.get_metric_history(run_id, "val_dice")) == steps // 5
