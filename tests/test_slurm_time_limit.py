"""Training longer than the partition's time limit: killed, resubmitted, resumed, same result.

Runs docs/pipeline.md's "Time limits" command on the one-node test cluster
(tests/conftest.py's ``slurm_cluster``), swapping only what a site fills in:
its profile (workflow/profiles/ci), its study (a one-run demo study instead
of config/paper.yaml), its limit (`runtime=1`, Slurm's smallest), and
`--max-threads 1` for a node of two CPUs (the profile asks for 8 threads per
training job). The training needs two to five minutes on this machine, so
Slurm stops each job at its limit (SIGTERM, SIGKILL 5 s later).

No periodic checkpoint (`checkpoint_every` = all iterations): a resume can only
start where a SIGTERM saved `latest.pt`. While the study runs, the test reads
the training log of each job (each job rewrites it) and records the step every
job stopped at and the step every job resumed at; they must be the same steps
(a job stopped after the last iteration, while writing the final checkpoints
and the model, finds that iteration's `latest.pt`: its successor resumes at the
end and only finishes).
An uninterrupted local run of the same config, started alongside, must give a
byte-identical summary (deterministic CPU training), and the MLflow run of the
training must be one run holding every step's loss exactly once.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from cluster_helpers import documented_line, replace_once, slurm_job_states, submitted_jobs
from workflow_helpers import VENV_BIN, project_copy, tool_env

# ~105 s of training on this machine when idle (28 it/s), 3-5 minutes under load: always longer
# than one job gets (Slurm's time-limit check runs every 30 s: a job is stopped 60-90 s after it starts)
ITERATIONS = 3000
STUDY = {
    "train": {"iterations": ITERATIONS, "val_every": 500, "checkpoint_every": ITERATIONS},
    "edit": {"variants": ["none"], "baselines": []},
    "datasets": ["demo_isic"],
}
RUN = Path("results/demo/demo_isic/none/seed0")
TRAIN_LOG = Path("logs/train/demo_isic/none/seed0.log")
SUMMARY = Path("results/demo/summary/summary.csv")
STOPPED = re.compile(r"stopped by SIGTERM at iteration (\d+); latest\.pt saved")
RESUMED = re.compile(r"resuming from \S+latest\.pt at step (\d+)/")


def time_limit_command() -> str:
    """docs/pipeline.md's "Time limits" command with the test site's values."""
    command = documented_line("Time limits", "snakemake ")
    command = replace_once(command, "workflow/profiles/slurm", "workflow/profiles/ci")
    command = replace_once(command, " --configfile config/paper.yaml", "")
    command = replace_once(command, "train:runtime=240", "train:runtime=1")
    return command + " --max-threads 1"


def steps_in(text: str, pattern: re.Pattern) -> set[int]:
    return {int(m) for m in pattern.findall(text)}


@pytest.mark.slow
def test_time_limited_training_is_resumed_until_the_study_completes(slurm_cluster, tmp_path):
    project = project_copy(tmp_path / "slurm", **STUDY)
    reference = project_copy(tmp_path / "reference", **STUDY)
    started = time.monotonic()
    with open(tmp_path / "slurm.log", "w") as out, open(tmp_path / "reference.log", "w") as ref_out:
        study = subprocess.Popen(
            ["bash", "-c", time_limit_command()], cwd=project, env=tool_env(project), stdout=out, stderr=out
        )
        plain = subprocess.Popen(  # the uninterrupted run, on this machine, alongside
            [str(VENV_BIN / "snakemake"), "--cores", "1"],
            cwd=reference,
            env=tool_env(reference, {"JOINTSEG_MLFLOW": "0"}),
            stdout=ref_out,
            stderr=ref_out,
        )
        stopped, resumed, states, polled = set(), set(), {}, 0.0
        while study.poll() is None and time.monotonic() - started < 1300:
            text = (project / TRAIN_LOG).read_text(errors="replace") if (project / TRAIN_LOG).is_file() else ""
            stopped |= steps_in(text, STOPPED)
            resumed |= steps_in(text, RESUMED)
            if time.monotonic() - polled > 5:  # Slurm's own record of each job, while it still keeps it
                states |= slurm_job_states()
                polled = time.monotonic()
            time.sleep(0.5)
        states |= slurm_job_states()
        if study.poll() is None:
            study.kill()
        assert plain.wait(timeout=1300) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    elapsed = time.monotonic() - started
    log = (tmp_path / "slurm.log").read_text()
    assert study.returncode == 0, log[-5000:]
    resumed |= steps_in((project / TRAIN_LOG).read_text(), RESUMED)  # the last job's log
    print(f"\ntime-limited study: {elapsed:.0f} s; stopped at {sorted(stopped)}, resumed at {sorted(resumed)}")

    # Every time-limit kill saved the step it reached, and the next job resumed exactly there. A kill
    # after the last iteration (while the final checkpoints and the model are written) finds the
    # last step's latest.pt saved already: the next job resumes at the end and only finishes.
    timeouts = log.count("SLURM status is: 'TIMEOUT'")
    assert timeouts >= 1 and len(resumed) == timeouts, (timeouts, stopped, resumed, log[-3000:])
    assert stopped <= resumed and resumed - stopped <= {ITERATIONS}, (stopped, resumed)
    assert all(0 < step <= ITERATIONS for step in resumed)
    # Slurm itself ended exactly the jobs Snakemake saw time out, and they were train jobs. Slurm's
    # "CANCELLED ... DUE TO TIME LIMIT" line is in the log of every job stopped mid-training; a job
    # whose limit struck after its training ended (while the job script exited) has none.
    jobs = submitted_jobs(log)
    timed_out = set(re.findall(r"SLURM-job '(\d+)' failed, SLURM status is: 'TIMEOUT'", log))
    assert {jobid for jobid in jobs if states.get(jobid) == "TIMEOUT"} == timed_out, (states, jobs)
    assert {jobs[jobid] for jobid in timed_out} == {"train"}
    slurm_logs = [p.read_text() for p in (project / "logs" / "slurm" / "rule_train").rglob("*.log")]
    assert len(stopped) <= sum("DUE TO TIME LIMIT" in text for text in slurm_logs) <= timeouts
    assert list(jobs.values()).count("train") == timeouts + 1
    # The study completed with what an uninterrupted run gives.
    assert (project / SUMMARY).read_bytes() == (reference / SUMMARY).read_bytes()
    history = (project / RUN / "history.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in history] == list(range(1, ITERATIONS + 1))
    # One MLflow run for the training, continued by every job: each step's loss once.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("jointseg-demo")
    children = client.search_runs([experiment.experiment_id], "tags.`jointseg.kind` = 'training'")
    assert [run.info.status for run in children] == ["FINISHED"]
    losses = client.get_metric_history(children[0].info.run_id, "loss")
    assert sorted(m.step for m in losses) == list(range(1, ITERATIONS + 1))
