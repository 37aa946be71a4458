"""GPU requests on Slurm: the documented command on a node with two (fake) GPUs.

The one-node test cluster (tests/conftest.py's ``slurm_cluster``) declares
`Gres=gpu:testgpu:2` backed by links to /dev/null (ci/slurm/setup_slurm.sh), so
Slurm allocates, counts and hands out GPUs exactly as on a GPU partition while
torch finds no CUDA. What runs is docs/pipeline.md's main Slurm command (GPU
requests from `gpus_per_job`, 1 by default) with the site's values: its profile
(workflow/profiles/ci), the test's study instead of config/paper.yaml, and
`--max-threads 1` (the node has two CPUs; one per job lets both GPU jobs run).

Observed, not assumed: Slurm's record of each job (`scontrol show job -d`: what
it asked for, which GPU index it got) and each training process's own
environment, read from /proc while it runs (after any wrapper's exec).
"""

from __future__ import annotations

import json
import re

import pytest
from cluster_helpers import ProcessWatch, documented_line, replace_once, slurm_job, submitted_jobs
from workflow_helpers import project_copy, run

VARIANTS = ["none", "self"]
GPU_RULES = {"train", "predict", "attention_stats"}  # attention_stats: of `self` only (`none` has no map)


def documented_gpu_command() -> str:
    """docs/pipeline.md's Slurm command (the GPU route) with the test site's values."""
    command = documented_line("On a Slurm cluster", "snakemake ")
    command = replace_once(command, "workflow/profiles/slurm", "workflow/profiles/ci")
    command = replace_once(command, " --configfile config/paper.yaml", "")
    return command + " --max-threads 1"


def allocated_gpu(record: dict[str, str]) -> str:
    """The GPU index Slurm gave a one-GPU job (`GRES=gpu:testgpu:1(IDX:1)`)."""
    found = re.search(r"gpu(?::\w+)?:1\(IDX:(\d+)\)", record.get("GRES", ""))
    assert found, record
    return found.group(1)


@pytest.mark.slow
def test_documented_gpu_command_gives_concurrent_jobs_their_own_gpus(slurm_cluster, tmp_path):
    train = {"iterations": 100, "val_every": 100, "checkpoint_every": 100, "batch_size": 2}
    project = project_copy(
        tmp_path / "project", train=train, edit={"variants": VARIANTS, "baselines": []}, datasets=["demo_isic"]
    )
    with ProcessWatch(project) as watch:
        done = run(["bash", "-c", documented_gpu_command()], project, timeout=1200)
    log = done.stdout + done.stderr

    # sbatch accepted every GPU request: one GPU per train/predict/attention_stats job, none for the others.
    jobs = submitted_jobs(log)
    gpu_jobs = sorted(rule for rule in jobs.values() if rule in GPU_RULES)
    assert gpu_jobs == ["attention_stats"] + ["predict"] * 2 + ["train"] * 2, log[-3000:]
    records = {jobid: slurm_job(jobid) for jobid in jobs}
    for jobid, rule in jobs.items():
        asked = records[jobid].get("TresPerJob", "")
        assert asked == ("gres:gpu:1" if rule in GPU_RULES else ""), (rule, records[jobid])

    # Each GPU process saw the device Slurm gave its job ...
    for process in watch.processes("train") + watch.processes("predict"):
        assert process["env"]["CUDA_VISIBLE_DEVICES"] == allocated_gpu(process["job"]), process
    # ... and the two trainings ran at the same time, on different devices.
    trainings = watch.processes("train")
    assert len(trainings) == 2, [(pid, p["ppid"], p["polls"]) for pid, p in watch.seen.items()]
    assert trainings[0]["polls"] & trainings[1]["polls"], "the two training processes never ran at once"
    devices = sorted(p["env"]["CUDA_VISIBLE_DEVICES"] for p in trainings)
    print(f"\ntraining jobs' CUDA_VISIBLE_DEVICES: {devices}")
    assert devices == ["0", "1"]
    # torch sees no CUDA behind the fake devices: training ran on the CPU.
    for variant in VARIANTS:
        done_file = project / "results" / "demo" / "demo_isic" / variant / "seed0" / "train_done.json"
        assert json.loads(done_file.read_text())["device"] == "cpu"
