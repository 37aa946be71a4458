"""The `gpu` resource: one slot per local device, none on a CPU-only machine, `--resources` wins;
moving a study between a CPU-only and a GPU machine reruns nothing."""

import re

import pytest
from workflow_helpers import QUICK_TRAIN, QUIET, project_copy, provided_gpus, snakemake

from jointseg.paths import run_dir


def train_gpu_requests(output: str) -> set[str]:
    """The `gpu` value every planned train job declares (from a dry run's job listing)."""
    blocks = output.split("\n\n")
    return {m for b in blocks if "rule train:" in b for m in re.findall(r"resources: .*?gpu=(\d+)", b)}


def test_local_gpu_slots_follow_the_device_count(tmp_path):
    project = project_copy(tmp_path / "p")
    two = snakemake(project, "raw", env={**QUIET, "JOINTSEG_GPUS": "0,1"})  # the default profile, as the README
    assert provided_gpus(two.stdout + two.stderr) == "2"
    planned = snakemake(project, "-n", "--forceall", env={**QUIET, "JOINTSEG_GPUS": "0,1"})
    assert train_gpu_requests(planned.stdout) == {"1"}
    given = snakemake(project, "raw", "--forceall", "--resources", "gpu=5", env={**QUIET, "JOINTSEG_GPUS": "0,1"})
    assert provided_gpus(given.stdout + given.stderr) == "5"


def test_a_cpu_only_machine_requests_no_gpu(tmp_path):
    project = project_copy(tmp_path / "p")
    done = snakemake(project, "raw", env={**QUIET, "JOINTSEG_GPUS": ""})
    assert provided_gpus(done.stdout + done.stderr) is None
    planned = snakemake(project, "-n", "--forceall", env={**QUIET, "JOINTSEG_GPUS": ""})
    assert train_gpu_requests(planned.stdout) == {"0"}
    forced = snakemake(project, "-n", "--forceall", "--config", "gpus_per_job=1", env={**QUIET, "JOINTSEG_GPUS": ""})
    assert train_gpu_requests(forced.stdout) == {"1"}


@pytest.mark.slow
def test_switching_between_cpu_and_gpu_machines_reruns_nothing(tmp_path):
    """One run trained and predicted with a GPU configuration (two fake devices: the job is pinned,
    torch sees no CUDA, says so once and runs on the CPU); dry runs on a CPU-only configuration and
    back plan no job: the wrapper is no param and the command text is the same everywhere."""
    project = project_copy(tmp_path / "p", train=QUICK_TRAIN)
    target = str(run_dir("results/demo", "demo_isic", "none", 0) / "predictions")
    gpu = {**QUIET, "JOINTSEG_GPUS": "0,1", "JOINTSEG_GPU_LOCK_DIR": str(tmp_path / "locks")}
    cpu = {**QUIET, "JOINTSEG_GPUS": ""}
    snakemake(project, "--cores", "2", target, env=gpu)
    log = (project / "logs" / "train" / "demo_isic" / "none" / "seed0.log").read_text()
    assert "gpu_slot: CUDA_VISIBLE_DEVICES=0" in log
    assert log.count("assigns a GPU but torch") == 1 and "running on the CPU" in log
    for env in (cpu, gpu, cpu):
        planned = snakemake(project, "-n", target, env=env)
        print(planned.stdout + planned.stderr)
        assert "Nothing to be done" in planned.stdout + planned.stderr
