"""The workflow on a real (one-node, CPU-only) Slurm cluster, run with the documented command.

ci/slurm/setup_slurm.sh installs (Debian slurmctld, slurmd, munge,
slurm-client) and starts munged, slurmctld and slurmd by hand. The test is
skipped, with the reason, only where that is impossible (not root, no apt-get,
no Slurm); any other failure of the set-up is a test failure.

What runs is the command of docs/pipeline.md's "CPU-only cluster" section,
read from the file and run through bash unmodified but for one thing any user
does: the profile's EDIT lines are filled in for the site. That site profile
is workflow/profiles/ci (partition, no account, squeue status, memory); it
asks for 8 threads per training job like workflow/profiles/slurm and sets
nothing GPU-related, so the command's own options (`--config gpus_per_job=0`,
`--max-threads` from sinfo) are what keep sbatch from refusing the jobs
("Invalid generic resource (gres) specification", or more CPUs than the node
has). A reduced study keeps it to minutes: one data set, two variants, two
iterations.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pandas as pd
import pytest
import yaml
from workflow_helpers import QUICK_TRAIN, ROOT, planned_jobs, project_copy, run

SETUP = ROOT / "ci" / "slurm" / "setup_slurm.sh"
CANNOT_INSTALL = 3  # setup_slurm.sh's exit status for "not root / no apt-get"
SITE_PROFILE = "workflow/profiles/ci"


def documented_cpu_command() -> str:
    """The `snakemake` line of the code block under docs/pipeline.md's "CPU-only cluster" heading."""
    text = (ROOT / "docs" / "pipeline.md").read_text()
    section = re.search(r"^###+ CPU-only cluster.*?```bash\n(.*?)```", text, re.S | re.M)
    assert section, "docs/pipeline.md has no 'CPU-only cluster' section with a bash block"
    lines = [ln for ln in section.group(1).replace("\\\n", " ").splitlines() if ln.startswith("snakemake ")]
    assert len(lines) == 1, section.group(1)
    return re.sub(r"\s+", " ", lines[0])


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node Slurm cluster (started here if needed)."""
    if shutil.which("bash") is None:
        pytest.skip("no bash to run ci/slurm/setup_slurm.sh")
    done = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=900)
    if done.returncode == CANNOT_INSTALL:
        reason = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1]
        print(f"\nSlurm test skipped: {reason}")
        pytest.skip(f"Slurm cannot be installed here: {reason}")
    assert done.returncode == 0, f"setup_slurm.sh failed:\n{done.stdout}\n{done.stderr}"
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t %c"], capture_output=True, text=True, timeout=60).stdout
    assert "idle" in nodes or "mix" in nodes, nodes
    return nodes


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
    project = project_copy(tmp_path / "project", train=QUICK_TRAIN, edit={"variants": ["none", "joint"]})
    config_path = project / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["datasets"] = {"demo_isic": config["datasets"]["demo_isic"]}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    command = documented_cpu_command().replace("workflow/profiles/slurm", SITE_PROFILE, 1)
    done = run(["bash", "-c", command], project, timeout=1200)
    log = done.stdout + done.stderr
    # The heavy rules really went through sbatch (local rules did not).
    assert "Job " in log and "has been submitted with SLURM jobid" in log, log[-3000:]
    for rule in ("prepare", "train", "predict", "evaluate", "aggregate"):
        assert f"rule {rule}:" in log
    assert "gres" not in log.lower(), log[-3000:]
    summary = pd.read_csv(project / "results" / "demo" / "summary" / "summary.csv")
    assert set(summary["variant"]) == {"none", "joint"}
    assert set(summary["dataset"]) == {"demo_isic"}
    # Nothing left to do, and no job left in the queue.
    again = run(["bash", "-c", command + " -n"], project, timeout=300)
    assert planned_jobs(again.stdout) == []
    queue = subprocess.run(["squeue", "-h"], capture_output=True, text=True, timeout=60).stdout
    assert queue.strip() == ""
