"""MLflow tracking: URI precedence, parent/child runs, parallel writers on one SQLite store.

Real MLflow against a SQLite file in a temporary folder; no network.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jointseg import tracking

ROOT = Path(__file__).resolve().parents[1]


def _run_config(variant: str = "joint", seed: int = 0, uri: str | None = None) -> dict:
    return {"study": "unit", "dataset": "demo_isic", "variant": variant, "seed": seed,
            "prepared_dir": "does/not/exist", "size": [64, 64],
            "model": {"arch": "denseunet", "preset": "small", "attention": variant},
            "train": {"lr": 0.001, "betas": [0.9, 0.99], "augment": {"flip": True}},
            "mlflow": {"tracking_uri": uri}}


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.resolve_tracking_uri() == "http://127.0.0.1:5000"
    assert tracking.resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"  # config wins


def test_flatten_and_parent_lookup(tmp_path, monkeypatch):
    flat = tracking.flatten({"train": {"lr": 0.001, "betas": [0.9, 0.99], "augment": {}}, "seed": 3})
    assert flat == {"train.lr": "0.001", "train.betas": "[0.9, 0.99]", "train.augment": "{}", "seed": "3"}
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    run_dir = tmp_path / "results" / "d" / "v" / "seed0"
    run_dir.mkdir(parents=True)
    assert tracking.parent_run_id(run_dir) is None
    (tmp_path / "results" / tracking.PARENT_FILE).write_text("abc123\n")
    assert tracking.parent_run_id(run_dir) == "abc123"
    monkeypatch.setenv(tracking.PARENT_ENV, "fromenv")
    assert tracking.parent_run_id(run_dir) == "fromenv"


def test_retry_gives_up_on_permanent_errors_and_retries_locks():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert tracking.retry(flaky, base_delay=0.001) == "ok" and len(calls) == 3

    def broken():
        calls.append(1)
        raise ValueError("bad parameter")

    calls.clear()
    with pytest.raises(ValueError):
        tracking.retry(broken, base_delay=0.001)
    assert len(calls) == 1


def test_parent_child_runs(tmp_path, monkeypatch):
    """track start -> child runs tagged with the parent -> track finish closes it with artifacts."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    config = {"study": "unit", "results_dir": "results", "mlflow": {"tracking_uri": None}, "seeds": [0]}
    parent = tracking.start_parent(config)
    assert (tmp_path / "results" / tracking.PARENT_FILE).read_text().strip() == parent

    run_dir = tmp_path / "results" / "demo_isic" / "joint" / "seed0"
    child = tracking.RunTracker(_run_config(), run_dir)
    assert child.enabled and child.run_id
    for step in range(1, 6):
        child.log_metrics({"loss": 1.0 / step, "val_dice": None}, step)
    child.finish()

    summary = tmp_path / "results" / "summary"
    summary.mkdir()
    (summary / "summary.md").write_text("| a |\n")
    assert tracking.log_parent_artifacts([summary / "summary.md"], config)
    assert tracking.finish_parent("FINISHED", [summary], config) == parent

    (tmp_path / "results" / tracking.PARENT_FILE).unlink()
    orphan = tracking.RunTracker(_run_config("self"), run_dir)  # no parent: top-level run
    orphan.finish()

    c = tracking.client(tracking.resolve_tracking_uri())
    p = c.get_run(parent)
    assert p.info.status == "FINISHED"
    assert c.get_experiment(p.info.experiment_id).name == "jointseg-unit"
    ch = c.get_run(child.run_id)
    assert ch.data.tags[tracking.PARENT_TAG] == parent
    assert ch.info.status == "FINISHED"
    assert ch.data.params["train.lr"] == "0.001" and ch.data.params["model.attention"] == "joint"
    assert ch.data.tags["git_commit"] and ch.data.tags["version.torch"]
    assert [m.value for m in c.get_metric_history(child.run_id, "loss")] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert tracking.PARENT_TAG not in c.get_run(orphan.run_id).data.tags
    names = {a.path for a in c.list_artifacts(parent)}
    assert {"summary", "summary.md", "config.json"} <= names


def test_tracking_failure_warns_and_continues(tmp_path):
    """An unusable store must not raise into training: a warning, then a no-op tracker."""
    bad = tmp_path / "not_a_dir"
    bad.write_text("x")
    with pytest.warns(RuntimeWarning, match="MLflow"):
        tr = tracking.RunTracker(_run_config(uri=f"sqlite:///{bad}/sub/mlflow.db"), tmp_path)
    assert not tr.enabled
    tr.log_metrics({"loss": 1.0}, 1)
    tr.flush()
    tr.finish()


WORKER = textwrap.dedent("""
    import sys
    from jointseg.tracking import RunTracker
    variant, steps = sys.argv[1], int(sys.argv[2])
    rc = {"study": "par", "dataset": "d", "variant": variant, "seed": 0, "prepared_dir": "none",
          "size": [8, 8], "model": {"attention": variant}, "train": {"lr": 0.001},
          "mlflow": {"tracking_uri": None}}
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
    env = {**os.environ, "PYTHONPATH": str(ROOT / "pipeline_src"), "MLFLOW_TRACKING_URI": "",
           "JOINTSEG_MLFLOW_PARENT": ""}
    steps = 40
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, f"v{i}", str(steps)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "failed" not in err, err  # no warn-and-continue: everything was retried successfully
    run_ids = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(run_ids) == 4

    c = tracking.client(f"sqlite:///{tmp_path}/mlflow.db")
    exp = c.get_experiment_by_name("jointseg-par")
    runs = c.search_runs([exp.experiment_id])
    assert {r.info.run_id for r in runs} == run_ids
    for run_id in run_ids:
        assert len(c.get_metric_history(run_id, "loss")) == steps
        assert len(c.get_metric_history(run_id, "lr")) == steps
        assert len(c.get_metric_history(run_id, "val_dice")) == steps // 5
        assert c.get_run(run_id).info.status == "FINISHED"
