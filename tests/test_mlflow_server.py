"""MLflow on a tracking server with a PostgreSQL database and proxied artifacts (the team route).

ci/mlflow/setup_postgres.sh installs PostgreSQL (Debian packages) if needed and
starts a private server on 127.0.0.1 (skipped, with the reason, only where that
is impossible). The tracking server is docs/pipeline.md's `mlflow server`
command, run as written there with the site's values in its variables
(database URI, artifact folder, host 127.0.0.1, a free port); the study gets
the URI from the page's `export MLFLOW_TRACKING_URI=…` line.

Quick tests show the failure policy of jointseg.tracking.store without a
server. In the slow test, one demo-sized study (two data sets x the four attention variants,
100 iterations each) runs against the server. While the first trainings run
(each past its first checkpoint), the server is stopped: the jobs must fail
within a bounded time with a message naming the URI. After a restart, the same command completes the study. Then,
read through the server from another folder: one FINISHED parent holding
every child, each FINISHED once, with its test metrics, every step's loss
once, its checkpoints (byte-identical to results/) and its model; the stopped
invocation's parent is KILLED and holds none.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from cluster_helpers import ROOT, documented_line, run_setup_script
from tracking_helpers import run_config
from workflow_helpers import VENV_BIN, project_copy, snakemake, tool_env

from jointseg import tracking
from jointseg.tracking import store

POSTGRES_SETUP = ROOT / "ci" / "mlflow" / "setup_postgres.sh"
HEADING = "A tracking server"
ITERATIONS = 100
TRAIN = {"iterations": ITERATIONS, "val_every": 50, "checkpoint_every": 10, "batch_size": 2}
VARIANTS = ["none", "pointwise", "self", "joint"]
RUNS = {(d, v) for d in ("demo_isic", "demo_msd") for v in VARIANTS}
FAIL_WITHIN = 200  # s from the stop to each training's error: ~60 s of retries, plus slack for a loaded machine
STUDY_ENDS_WITHIN = 400  # s from the stop to Snakemake's exit: the jobs, then its onerror hook's own retries


def test_tracking_uris_in_messages_hide_passwords():
    assert store.display_uri("postgresql://mlflow:s3cret@db:5432/mlflow") == "postgresql://mlflow:***@db:5432/mlflow"
    assert store.display_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_an_unreachable_store_stops_the_job_naming_its_uri(tmp_path, monkeypatch):
    """Quick form of the policy (the slow test below shows it with a real server): retries
    spent on a refused connection end in one line naming the URI, in bounded time."""
    monkeypatch.setenv(store.RETRY_ENV, "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(store.TrackingUnavailable, match=f"^MLflow tracking store {dead} unreachable"):
        tracking.RunTracker(run_config(dead), tmp_path)
    assert time.monotonic() - start < 30
    # A store lost during training: the next flush stops the job; closing the run then sends nothing.
    tr = tracking.RunTracker(run_config(f"sqlite:///{tmp_path}/mlflow.db"), tmp_path)
    tr.log_metrics({"loss": 1.0}, 1)
    tr.uri, tr._client = dead, store.client(dead)
    with pytest.raises(store.TrackingUnavailable, match=dead):
        tr.flush()
    start = time.monotonic()
    tr.finish("FAILED")
    assert not tr.enabled and time.monotonic() - start < 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TrackingServer:
    """docs/pipeline.md's `mlflow server` command, started and stopped (SIGTERM) as a process group."""

    def __init__(self, database: str, artifacts: Path, log: Path):
        self.command = documented_line(HEADING, "mlflow server ")
        self.env = {
            **os.environ,
            "TRACKING_DB": database,
            "TRACKING_ARTIFACTS": str(artifacts),
            "TRACKING_HOST": "127.0.0.1",
            "TRACKING_PORT": str(free_port()),
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        }
        export = documented_line(HEADING, "export MLFLOW_TRACKING_URI=")
        self.uri = subprocess.run(
            ["bash", "-c", f"{export}; echo $MLFLOW_TRACKING_URI"], env=self.env, capture_output=True, text=True
        ).stdout.strip()
        self.log, self.proc = log, None

    def start(self, timeout: float = 300) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                ["bash", "-c", self.command], env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if requests.get(f"{self.uri}/health", timeout=5).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(1)
        pytest.fail(f"mlflow server not up in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=120)


@pytest.fixture(scope="module")
def database():
    """PostgreSQL for the tracking server: its URI (stopped after the module)."""
    uri = run_setup_script(POSTGRES_SETUP).strip().splitlines()[-1]
    assert uri.startswith("postgresql://"), uri
    yield uri
    subprocess.run(["bash", str(POSTGRES_SETUP), "--stop"], capture_output=True, timeout=120)


@pytest.fixture()
def server(database, tmp_path):
    srv = TrackingServer(database, tmp_path / "artifacts", tmp_path / "server.log")
    assert srv.uri == f"http://127.0.0.1:{srv.env['TRACKING_PORT']}"
    srv.start()
    yield srv
    srv.stop()


def training_state(project: Path) -> tuple[list[Path], bool]:
    """The trainings started and not finished, and whether each of them has saved a checkpoint."""
    started = [p.parent / p.stem for p in (project / "logs" / "train").glob("*/*/seed0.log")]
    runs = [project / "results" / "demo" / p.relative_to(project / "logs" / "train") for p in started]
    unfinished = [r for r in runs if not (r / "train_done.json").exists()]
    return unfinished, all((r / "checkpoints" / "latest.pt").exists() for r in unfinished)


def stop_server_during_training(project: Path, srv: TrackingServer, timeout: float = 900) -> tuple[int, float]:
    """Run the study; stop the server once trainings run and each has saved a checkpoint (so its
    MLflow run id is in latest.pt). Returns the study's exit status and the time of the stop."""
    with open(project / "study.log", "w") as out:
        study = subprocess.Popen(
            [str(VENV_BIN / "snakemake"), "--cores", "2"],
            cwd=project,
            env=tool_env(project, {"MLFLOW_TRACKING_URI": srv.uri}),
            stdout=out,
            stderr=out,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert study.poll() is None, (project / "study.log").read_text()[-3000:]
            unfinished, checkpointed = training_state(project)
            if unfinished and checkpointed:
                break
            time.sleep(0.2)
        stopped_at = time.time()
        srv.stop()
        print(f"\nserver stopped while training {[str(r.relative_to(project)) for r in unfinished]}")
        return study.wait(timeout=900), stopped_at


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_study_on_a_tracking_server_survives_losing_it(server, tmp_path, monkeypatch):
    project = project_copy(tmp_path / "project", train=TRAIN, edit={"variants": VARIANTS, "baselines": []})
    status, stopped_at = stop_server_during_training(project, server)
    ended_at = time.time()

    # The jobs failed within a bounded time, each naming the tracking URI; so did the study.
    log = (project / "study.log").read_text()
    assert status != 0, log[-3000:]
    failed = [p for p in (project / "logs" / "train").glob("*/*/seed0.log") if "unreachable" in p.read_text()]
    assert failed, log[-3000:]
    for train_log in failed:
        error = [ln for ln in train_log.read_text().splitlines() if "error:" in ln][-1]
        assert error.startswith(f"jointseg train: error: MLflow tracking store {server.uri} unreachable"), error
        delay = train_log.stat().st_mtime - stopped_at
        print(f"{train_log.relative_to(project)}: failed {delay:.0f} s after the stop")
        assert delay < FAIL_WITHIN, error
    print(f"failure message: {error}\nstudy exited {ended_at - stopped_at:.0f} s after the stop")
    assert ended_at - stopped_at < STUDY_ENDS_WITHIN

    # Restart, rerun the same command: the study completes.
    server.start()
    snakemake(project, "--cores", "2", env={"MLFLOW_TRACKING_URI": server.uri}, timeout=1200)

    # Everything, read through the server from another folder.
    import mlflow
    from mlflow.tracking import MlflowClient
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    client = MlflowClient(tracking_uri=server.uri)
    experiment = client.get_experiment_by_name("jointseg-demo")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = sorted((r for r in runs if r.data.tags.get("jointseg.kind") == "pipeline"), key=lambda r: r.info.status)
    children = [r for r in runs if r.data.tags.get("jointseg.kind") == "training"]
    assert [r.info.status for r in parents] == ["FINISHED", "KILLED"] and len(runs) == len(parents) + len(children)
    finished = parents[0].info.run_id
    assert sorted((c.data.tags["dataset"], c.data.tags["variant"]) for c in children) == sorted(RUNS)
    models = {m.source_run_id: m for m in client.search_logged_models([experiment.experiment_id])}
    for child in children:
        run_dir = project / "results" / "demo" / child.data.tags["dataset"] / child.data.tags["variant"] / "seed0"
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == finished
        assert child.info.artifact_uri.startswith("mlflow-artifacts:/")  # stored by the server
        assert 0 <= child.data.metrics["test_dice_mean"] <= 1
        steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "loss"))
        assert steps == list(range(1, ITERATIONS + 1)), child.data.tags["mlflow.runName"]
        for name in ("best.pt", "final.pt"):
            got = mlflow.artifacts.download_artifacts(
                run_id=child.info.run_id,
                artifact_path=f"checkpoints/{name}",
                dst_path=str(elsewhere / child.info.run_id),
                tracking_uri=server.uri,
            )
            assert sha256(Path(got)) == sha256(run_dir / "checkpoints" / name)
        with _use_tracking_uri(server.uri):  # get_model_info reads the process-wide URI
            assert "pytorch" in mlflow.models.get_model_info(models[child.info.run_id].model_uri).flavors
    summary = mlflow.artifacts.list_artifacts(run_id=finished, artifact_path="summary", tracking_uri=server.uri)
    assert "summary/summary.csv" in {a.path for a in summary}
    assert not (project / "mlruns").exists() and not (project / "mlflow.db").exists()
