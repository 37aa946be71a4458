"""MLflow parent runs: one per invocation, clean-up after ``kill -9``, test scores, the summary.

Real MLflow against a SQLite file in a temporary folder; no mocks. Everything is
read back through ``mlflow.search_runs``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tracking_helpers import artifact_paths, module_store, run_config, search_runs

from jointseg import tracking
from jointseg.cli import main as cli_main
from jointseg.tracking import owner

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    yield from module_store(tmp_path_factory)


def study_config(uri: str, study: str) -> dict:
    return {
        "study": study,
        "results_dir": "results",
        "mlflow": {"tracking_uri": uri},
        "datasets": {
            "demo_isic": {"labels": {"0": "background", "1": "lesion"}},
            "demo_msd": {"labels": {"0": "background", "1": "anterior", "2": "posterior"}},
        },
    }


def test_owner_checks():
    """A live owner, a dead pid, a recycled pid, another host."""
    me = owner.owner_tags()
    assert not owner.owner_gone(me)
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead = {**me, owner.PID_TAG: done.stdout.strip(), owner.START_TAG: ""}
    assert owner.owner_gone(dead)
    recycled = {**me, owner.START_TAG: f"{float(me[owner.START_TAG]) - 3600:.2f}"}
    assert owner.owner_gone(recycled)
    elsewhere = {**dead, owner.HOST_TAG: socket.gethostname() + "-other"}
    assert not owner.owner_gone(elsewhere)  # cannot be checked from here: left alone


def test_each_invocation_owns_its_parent(mlflow_store, tmp_path, monkeypatch):
    """Two invocations in a row: each job nests under the parent its environment names."""
    config = study_config(mlflow_store, "twice")
    first = tracking.start_parent(config, tmp_path)
    monkeypatch.setenv(tracking.PARENT_ENV, first)
    a = tracking.RunTracker(run_config(mlflow_store, "twice", "self"), tmp_path)
    a.finish()
    second = tracking.start_parent(config, tmp_path)  # the first one's owner (this process) lives
    monkeypatch.setenv(tracking.PARENT_ENV, second)
    b = tracking.RunTracker(run_config(mlflow_store, "twice", "joint"), tmp_path)
    b.finish()

    runs = search_runs(mlflow_store, "twice").set_index("run_id")
    assert runs.loc[a.run_id, "tags.mlflow.parentRunId"] == first
    assert runs.loc[b.run_id, "tags.mlflow.parentRunId"] == second
    assert runs.loc[first, "status"] == "RUNNING" and runs.loc[second, "status"] == "RUNNING"


def test_a_parent_without_study_dir_is_the_study_folder(mlflow_store, tmp_path, monkeypatch):
    """`start_parent` without a folder records <results_dir>/<study>, the folder the workflow passes
    (`--study-dir`), so a by-hand parent continues the children of the study's failed workflow parent."""
    monkeypatch.chdir(tmp_path)
    config = study_config(mlflow_store, "fallback")  # results_dir: results (relative, as in a config)
    study_dir = tmp_path / "results" / "fallback"
    workflow_parent = tracking.start_parent(config, study_dir)
    monkeypatch.setenv(tracking.PARENT_ENV, workflow_parent)
    child = tracking.RunTracker(run_config(mlflow_store, "fallback"), study_dir)
    child.finish()
    tracking.finish_parent("FAILED", config, run_id=workflow_parent)
    monkeypatch.delenv(tracking.PARENT_ENV)

    by_hand = tracking.start_parent(config)
    runs = search_runs(mlflow_store, "fallback").set_index("run_id")
    assert runs.loc[by_hand, "tags.jointseg.results_dir"] == str(study_dir.resolve())
    assert runs.loc[workflow_parent, "tags.jointseg.results_dir"] == str(study_dir.resolve())
    assert runs.loc[child.run_id, "tags.mlflow.parentRunId"] == by_hand


DOOMED = textwrap.dedent("""
    import os, sys, time
    from jointseg import tracking
    uri, results = sys.argv[1], sys.argv[2]
    config = {"study": "crash", "results_dir": results, "mlflow": {"tracking_uri": uri}}
    parent = tracking.start_parent(config, results, owner_pid=os.getpid())
    os.environ[tracking.PARENT_ENV] = parent
    ids = []
    for variant in ("joint", "self"):
        rc = {"study": "crash", "dataset": "demo_isic", "variant": variant, "seed": 0, "labels": {},
              "mlflow": {"tracking_uri": uri}}
        tr = tracking.RunTracker(rc, results)
        tr.log_metrics({"loss": 1.0}, 1)
        tr.flush()
        if variant == "self":
            tr.finish()  # one training finished, the other is cut off by the kill
        ids.append(tr.run_id)
    print(parent, *ids, flush=True)
    time.sleep(600)
""")


@pytest.mark.timeout(600)
def test_kill9_then_rerun_nests_every_child_under_a_finished_parent(mlflow_store, tmp_path, monkeypatch):
    """kill -9 of the invocation; the rerun marks its parent and cut-off child KILLED, adopts the
    children, resumes the cut-off training; after finish every child sits under a FINISHED parent."""
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "pipeline_src"), tracking.PARENT_ENV: ""}
    proc = subprocess.Popen(
        [sys.executable, "-c", DOOMED, mlflow_store, str(results)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert line, proc.stderr.read()
    old_parent, cut_off, finished = line.split()
    assert search_runs(mlflow_store, "crash").set_index("run_id").loc[old_parent, "status"] == "RUNNING"

    config = {"study": "crash", "results_dir": str(results), "mlflow": {"tracking_uri": mlflow_store}}
    new_parent = tracking.start_parent(config, results, owner_pid=os.getpid())
    runs = search_runs(mlflow_store, "crash").set_index("run_id")
    assert runs.loc[old_parent, "status"] == "KILLED"
    assert runs.loc[cut_off, "status"] == "KILLED"
    assert runs.loc[finished, "status"] == "FINISHED"
    assert runs.loc[old_parent, "tags.jointseg.continued_by"] == new_parent

    monkeypatch.setenv(tracking.PARENT_ENV, new_parent)
    rc = {
        "study": "crash",
        "dataset": "demo_isic",
        "variant": "joint",
        "seed": 0,
        "labels": {},
        "mlflow": {"tracking_uri": mlflow_store},
    }
    resumed = tracking.RunTracker(rc, results, resume_run_id=cut_off)
    resumed.log_metrics({"loss": 0.5}, 2)
    resumed.finish()
    tracking.finish_parent("FINISHED", config)

    runs = search_runs(mlflow_store, "crash")
    children = runs[runs["tags.jointseg.kind"] == "training"]
    assert set(children["run_id"]) == {cut_off, finished}
    assert set(children["tags.mlflow.parentRunId"]) == {new_parent}
    assert set(children["status"]) == {"FINISHED"}
    assert runs.set_index("run_id").loc[new_parent, "status"] == "FINISHED"


def write_run(run_dir: Path, run_id: str | None, labels: dict, rows: list[tuple]) -> Path:
    """A run folder as training and evaluation leave it (metrics.csv in its new column layout)."""
    import json

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run_config.json").write_text(json.dumps({"labels": labels, "mlflow": {"tracking_uri": None}}))
    (run_dir / "train_done.json").write_text(json.dumps({"mlflow_run_id": run_id}))
    lines = ["dataset,variant,seed,case,class,dice,iou,hd95,assd,sensitivity,specificity,precision,diagonal,unit"]
    lines += [f"demo_msd,joint,0,{case},{k},{d},{d / 2},{hd},{hd},1,1,1,90.5,mm" for case, k, d, hd in rows]
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    return run_dir / "metrics.csv"


def test_test_metrics_reach_the_child_run(mlflow_store, tmp_path, monkeypatch, capsys):
    """`jointseg track metrics`: per class (mean over cases, NaN skipped) and the class mean."""
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    tr = tracking.RunTracker(run_config(mlflow_store, "scores", dataset="demo_msd"), tmp_path)
    tr.finish()
    labels = {"0": "background", "1": "anterior", "2": "posterior"}
    rows = [("007", 1, 0.8, 2.0), ("008", 1, 0.6, "nan"), ("007", 2, 0.5, 4.0), ("008", 2, 0.3, 6.0)]
    metrics = write_run(tmp_path / "demo_msd" / "joint" / "seed0", tr.run_id, labels, rows)
    assert cli_main(["track", "metrics", "--metrics", str(metrics)]) == 0

    untracked = write_run(tmp_path / "demo_msd" / "self" / "seed0", None, labels, rows)
    assert cli_main(["track", "metrics", "--metrics", str(untracked)]) == 0  # a note, not a failure
    assert "no MLflow run id" in capsys.readouterr().err

    run = search_runs(mlflow_store, "scores").iloc[0]
    assert run["metrics.test_dice_anterior"] == pytest.approx(0.7)
    assert run["metrics.test_dice_posterior"] == pytest.approx(0.4)
    assert run["metrics.test_dice_mean"] == pytest.approx(0.55)
    assert run["metrics.test_iou_mean"] == pytest.approx(0.275)
    assert run["metrics.test_hd95_anterior"] == pytest.approx(2.0)  # the NaN case is left out
    assert run["metrics.test_hd95_mean"] == pytest.approx(3.5)
    assert "metrics.test_diagonal_mean" not in run.index


def test_finish_logs_seed_means_and_summary_without_markers(mlflow_store, tmp_path):
    config = study_config(mlflow_store, "summary")
    parent = tracking.start_parent(config, tmp_path)
    summary = tmp_path / "summary"
    (summary / "figures").mkdir(parents=True)
    (summary / "summary.csv").write_text(
        "dataset,variant,seed,class,n_cases,n_nan_distance,n_params,dice,iou,hd95,assd,sensitivity,specificity,"
        "precision,hd95_pct\n"
        "demo_isic,joint,0,1,5,0,1000,0.80,0.7,3.0,1.0,0.9,0.99,0.8,1.0\n"
        "demo_isic,joint,1,1,5,1,1000,0.70,0.6,5.0,2.0,0.9,0.99,0.8,3.0\n"
        "demo_isic,self,0,1,5,0,900,0.60,0.5,7.0,3.0,0.9,0.99,0.8,5.0\n"
    )
    (summary / "stats.csv").write_text("dataset,class,metric,variant,mean\n")
    (summary / "figures" / "demo_isic_boxplot.png").write_bytes(b"png")
    (summary / "figures" / ".snakemake_timestamp").write_text("")
    assert tracking.finish_parent("FINISHED", config, summary, run_id=parent) == parent

    run = search_runs(mlflow_store, "summary").set_index("run_id").loc[parent]
    assert run["status"] == "FINISHED"
    # the headline only: the class means of Dice, HD95, IoU, ASSD averaged over seeds
    assert run["metrics.demo_isic/joint/test_dice_mean"] == pytest.approx(0.75)
    assert run["metrics.demo_isic/joint/test_hd95_mean"] == pytest.approx(4.0)
    assert run["metrics.demo_isic/self/test_iou_mean"] == pytest.approx(0.5)
    logged = sorted(c for c in run.index if c.startswith("metrics.") and run[c] == run[c])  # not NaN
    assert len(logged) == 2 * 4  # two variants x (dice, hd95, iou, assd); per class and the rest: the table
    assert artifact_paths(mlflow_store, parent) == {
        "config.json",
        "summary_table.json",
        "summary/summary.csv",
        "summary/stats.csv",
        "summary/figures/demo_isic_boxplot.png",
    }


def test_start_failure_is_one_line(tmp_path):
    """`track start` against an unusable store: exit 1 and one line on stderr, no traceback."""
    import yaml

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    bad = tmp_path / "not_a_dir"
    bad.write_text("x")
    config["mlflow"] = {"tracking_uri": f"sqlite:///{bad}/mlflow.db"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "pipeline_src")}
    done = subprocess.run(
        [sys.executable, "-m", "jointseg", "track", "start", "--config", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "MLflow failed" in done.stderr
