"""The workflow on a real one-node Slurm cluster, run with the documented CPU-only command.

ci/slurm/setup_slurm.sh installs (Debian slurmctld, slurmd, munge,
slurm-client) and starts munged, slurmctld and slurmd by hand; the
``slurm_cluster`` fixture (tests/conftest.py) does it once for all cluster tests.
The test is skipped, with the reason, only where that is impossible (not root,
no apt-get, no Slurm); any other failure of the set-up is a test failure.

What runs is the command of docs/pipeline.md's "CPU-only cluster" section,
read from the file and run through bash unmodified but for one thing any user
does: the profile's EDIT lines are filled in for the site. That site profile
is workflow/profiles/ci (partition, no account, squeue status, memory); it
asks for 8 threads per training job like workflow/profiles/slurm and sets
nothing GPU-related, so the command's own options (`--config gpus_per_job=0`,
`--max-threads` from sinfo) are what keep sbatch from refusing the jobs on a
CPU-only cluster ("Invalid generic resource (gres) specification", or more
CPUs than the node has). The test cluster has two (fake) GPUs, so Slurm's own
record of every job must show that none asked for one. A reduced study keeps
it to minutes: one data set, two variants, two iterations.
"""

from __future__ import annotations

import re
import subprocess

import pandas as pd
import pytest
import yaml
from cluster_helpers import documented_line, replace_once, slurm_job, submitted_jobs
from workflow_helpers import QUICK_TRAIN, ROOT, planned_jobs, project_copy, run

SITE_PROFILE = "workflow/profiles/ci"


def documented_cpu_command() -> str:
    """The `snakemake` line of the code block under docs/pipeline.md's "CPU-only cluster" heading."""
    return documented_line("CPU-only cluster", "snakemake ")


def test_site_profile_leaves_gpus_and_threads_to_the_command():
    """The ci profile only fills in site lines: GPU and thread limits must come from the command."""
    profile = yaml.safe_load((ROOT / SITE_PROFILE / "config.yaml").read_text())
    slurm = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    assert "max-threads" not in profile and "resources" not in profile
    assert profile["set-threads"] == slurm["set-threads"]
    for rule, settings in profile["set-resources"].items():
        assert not {"gpu", "gpu_model", "gres", "cpus_per_task"} & set(settings), rule
    command = documented_cpu_command()
    assert command.startswith("snakemake --profile workflow/profiles/slurm ")
    assert "gpus_per_job=0" in command and "--max-threads" in command


@pytest.mark.slow
def test_documented_cpu_command_runs_a_study_through_slurm(slurm_cluster, tmp_path):
    project = project_copy(
        tmp_path / "project",
        train=QUICK_TRAIN,
        edit={"variants": ["none", "joint"], "baselines": []},
        datasets=["demo_isic"],
    )
    command = replace_once(documented_cpu_command(), "workflow/profiles/slurm", SITE_PROFILE)
    done = run(["bash", "-c", command], project, timeout=1200)
    log = done.stdout + done.stderr
    # The heavy rules really went through sbatch (local rules did not).
    jobs = submitted_jobs(log)
    heavy = {"prepare", "train", "predict", "evaluate", "attention_stats", "claims", "aggregate"}
    assert set(jobs.values()) == heavy, log[-3000:]
    assert "gres" not in log.lower(), log[-3000:]
    for jobid, rule in jobs.items():  # Slurm's record: no job asked for a GPU, none got more CPUs than a node has
        record = slurm_job(jobid)
        assert "gpu" not in record.get("TresPerJob", "") + record.get("TRES", ""), (rule, record)
        assert int(record["NumCPUs"]) <= int(re.search(r" (\d+) ", slurm_cluster).group(1)), (rule, record)
    summary = pd.read_csv(project / "results" / "demo" / "summary" / "summary.csv")
    assert set(summary["variant"]) == {"none", "joint"}
    assert set(summary["dataset"]) == {"demo_isic"}
    # Nothing left to do, and no job left in the queue.
    again = run(["bash", "-c", command + " -n"], project, timeout=300)
    assert planned_jobs(again.stdout) == []
    queue = subprocess.run(["squeue", "-h"], capture_output=True, text=True, timeout=60).stdout
    assert queue.strip() == ""
