"""The `gpu` resource: one slot per local device, none on a CPU-only machine, `--resources` wins."""

import re

from workflow_helpers import project_copy, snakemake

QUIET = {"JOINTSEG_MLFLOW": "0"}


def provided_gpus(output: str) -> str | None:
    """The `gpu` value of Snakemake's "Provided resources" line, or None when it lists none."""
    line = next((l for l in output.splitlines() if l.startswith("Provided resources:")), "")
    found = re.search(r"gpu=\D*(\d+)", line)
    return found.group(1) if found else None


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
