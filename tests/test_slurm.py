"""The workflow on a real (one-node) Slurm cluster through workflow/profiles/ci.

ci/slurm/setup_slurm.sh installs (Debian slurmctld, slurmd, munge,
slurm-client) and starts munged, slurmctld and slurmd by hand. The test is
skipped, with the reason, only where that is impossible (not root, no apt-get,
no Slurm); any other failure of the set-up is a test failure.

A reduced study keeps it to minutes: one data set, two variants, two
iterations. GPU requests are switched off by the ci profile (gpu: 0), since the
test node declares no GPU gres and sbatch would refuse --gpus.
"""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest

from test_workflow import QUICK_TRAIN, ROOT, planned_jobs, project_copy, snakemake

SETUP = ROOT / "ci" / "slurm" / "setup_slurm.sh"
CANNOT_INSTALL = 3  # setup_slurm.sh's exit status for "not root / no apt-get"


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
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t %c"], capture_output=True, text=True,
                           timeout=60).stdout
    assert "idle" in nodes or "mix" in nodes, nodes
    return nodes


@pytest.mark.slow
def test_reduced_study_runs_through_slurm(slurm_cluster, tmp_path):
    project = project_copy(tmp_path / "project", train=QUICK_TRAIN,
                           edit={"variants": ["none", "joint"]})
    config_path = project / "config" / "config.yaml"
    text = config_path.read_text()
    import yaml

    config = yaml.safe_load(text)
    config["datasets"] = {"demo_isic": config["datasets"]["demo_isic"]}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    done = snakemake(project, "--profile", "workflow/profiles/ci", timeout=1200)
    log = done.stdout + done.stderr
    # The heavy rules really went through sbatch (local rules did not).
    assert "Job " in log and "has been submitted with SLURM jobid" in log, log[-3000:]
    for rule in ("prepare", "train", "predict", "evaluate", "aggregate"):
        assert f"rule {rule}:" in log
    summary = pd.read_csv(project / "results" / "summary" / "summary.csv")
    assert set(summary["variant"]) == {"none", "joint"}
    assert set(summary["dataset"]) == {"demo_isic"}
    # Nothing left to do, and no job left in the queue.
    assert planned_jobs(snakemake(project, "-n", "--profile", "workflow/profiles/ci", timeout=300).stdout) == []
    queue = subprocess.run(["squeue", "-h"], capture_output=True, text=True, timeout=60).stdout
    assert queue.strip() == ""
