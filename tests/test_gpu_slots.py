"""GPU slots with a fake `nvidia-smi`: the devices CUDA_VISIBLE_DEVICES (or Slurm) exposes, one job per
physical GPU across projects, the workflow's `gpu` limit sized from the visible devices.

The fake GPUs get UUIDs unique to the test, so the per-user default lock folder
(/tmp/jointseg-gpu-slots-<uid>) can be used without meeting another run's locks.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from workflow_helpers import QUIET, VENV_BIN, project_copy, provided_gpus, snakemake

from jointseg import gpus

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow" / "scripts" / "gpu_slot.py"


def probe(hold: float = 0.0, ready: Path | None = None) -> str:
    """Python code printing the job's devices, device order and when it held them, as JSON
    (first touching a file in ``ready``, once it runs)."""
    touch = f"open({str(ready / 'job')!r} + str(os.getpid()), 'w').close(); " if ready else ""
    return (
        f"import json, os, time; start = time.time(); {touch}time.sleep({hold!r}); print(json.dumps({{'cvd': "
        "os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'), 'order': os.environ.get('CUDA_DEVICE_ORDER'), "
        "'start': start, 'end': time.time()}))"
    )


def report(job: subprocess.Popen) -> tuple[dict, str]:
    out, err = job.communicate(timeout=60)
    assert job.returncode == 0, err
    return json.loads(out), err


def fake_nvidia_smi(folder: Path, count: int, mig: bool = False) -> list[str]:
    """An `nvidia-smi -L` printing ``count`` GPUs (and a MIG line); returns their UUIDs."""
    tag = uuid.uuid4().hex[:8]
    uuids = [f"GPU-{tag}-{i}aaa-0000" for i in range(count)]
    lines = [f"GPU {i}: NVIDIA A100-SXM4-80GB (UUID: {u})" for i, u in enumerate(uuids)]
    if mig:
        lines.insert(1, f"  MIG 3g.40gb     Device  0: (UUID: MIG-{tag})")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nvidia-smi").write_text("#!/bin/sh\ncat <<'EOF'\n" + "\n".join(lines) + "\nEOF\n")
    (folder / "nvidia-smi").chmod(0o755)
    return uuids


@pytest.fixture
def four(tmp_path, monkeypatch) -> list[str]:
    """Four fake GPUs on PATH; no override, no Slurm, no CUDA_VISIBLE_DEVICES."""
    uuids = fake_nvidia_smi(tmp_path / "bin", 4, mig=True)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    for name in ("JOINTSEG_GPUS", "SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", "JOINTSEG_GPU_LOCK_DIR"):
        monkeypatch.delenv(name, raising=False)
    return uuids


def test_visible_devices_follow_cuda_visible_devices(four, monkeypatch):
    assert gpus.visible_devices() == ["0", "1", "2", "3"]  # the MIG line is not a GPU
    assert [g.key for g in gpus.visible_gpus()] == four
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpus.visible_gpus() == [gpus.Gpu("2", four[2]), gpus.Gpu("3", four[3])]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{four[3][:16]},{four[1]}")  # UUIDs, a prefix too
    assert gpus.visible_gpus() == [gpus.Gpu(four[3][:16], four[3]), gpus.Gpu(four[1], four[1])]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"1,{four[0][:12]}")  # a prefix of all four UUIDs: ambiguous
    assert gpus.visible_devices() == ["1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,x,1")  # CUDA stops at the first invalid entry
    assert gpus.visible_devices() == ["3"]
    for hidden in ("", "NoDevFiles", "-1", "7"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert gpus.visible_devices() == []


def test_without_nvidia_smi_the_entries_are_the_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi (a container without it)
    monkeypatch.delenv("JOINTSEG_GPUS", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpus.visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert [g.key for g in gpus.visible_gpus()] == ["gpu0", "gpu1"]
    # under Slurm an index names a GPU only inside its job (cgroups number every job's GPUs from 0)
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert [g.key for g in gpus.visible_gpus()] == ["slurm-job42-gpu0", "slurm-job42-gpu1"]


def _wrapped(code: str, gpus_: int = 1, cwd: Path | None = None, **env: str) -> subprocess.Popen:
    """gpu_slot.py --gpus N -- python -c CODE, with ``env`` on top of this process's environment."""
    command = [sys.executable, str(SCRIPT), "--gpus", str(gpus_), "--", sys.executable, "-c", code]
    full = {**os.environ, "PYTHONPATH": str(ROOT / "pipeline_src"), **env}
    return subprocess.Popen(command, cwd=cwd, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_visible_of_four_give_two_slots_and_concurrent_jobs_distinct_devices(four, tmp_path):
    """Two jobs of two projects (working folders) on CUDA_VISIBLE_DEVICES=2,3 of four GPUs, then a third."""
    ready = tmp_path / "ready"
    ready.mkdir()
    for project in ("a", "b"):
        (tmp_path / project).mkdir()
    first = [_wrapped(probe(3.0, ready), cwd=tmp_path / p, CUDA_VISIBLE_DEVICES="2,3") for p in ("a", "b")]
    deadline = time.monotonic() + 60
    while len(list(ready.iterdir())) < 2 and time.monotonic() < deadline:  # both hold their slot now
        time.sleep(0.05)
    third = _wrapped(probe(), cwd=tmp_path / "a", CUDA_VISIBLE_DEVICES="2,3")
    (a, _), (b, _), (c, waited) = (report(job) for job in (*first, third))
    assert sorted([a["cvd"], b["cvd"]]) == ["2", "3"] and c["cvd"] in ("2", "3")
    assert {a["order"], b["order"], c["order"]} == {"PCI_BUS_ID"}
    assert "busy with other jobs of this user; waiting" in waited
    assert c["start"] >= min(a["end"], b["end"])  # it ran only once a slot was free
    folder = Path(f"/tmp/jointseg-gpu-slots-{os.getuid()}")  # the per-user default, shared by both projects
    locks = sorted(folder.glob(f"{four[0][:12]}*.lock"))  # this test's own (its UUIDs are unique)
    assert [p.name for p in locks] == sorted([f"{four[2]}.lock", f"{four[3]}.lock"])
    assert folder.stat().st_uid == os.getuid() and folder.stat().st_mode & 0o077 == 0
    for lock in locks:
        lock.unlink()


def test_slurm_allocation_of_the_requested_size_is_not_touched(tmp_path, monkeypatch):
    """A Slurm job's own GPU (index 0 in its cgroup): nothing to choose, no lock that other jobs could meet."""
    fake_nvidia_smi(tmp_path / "bin", 1)
    locks = tmp_path / "locks"
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "JOINTSEG_GPU_LOCK_DIR": str(locks)}
    monkeypatch.delenv("JOINTSEG_GPUS", raising=False)
    jobs = [_wrapped(probe(), SLURM_JOB_ID=str(j), CUDA_VISIBLE_DEVICES="0", **env) for j in (7, 8)]
    assert [report(job)[0]["cvd"] for job in jobs] == ["0", "0"]
    assert not locks.exists()


def test_inside_a_multi_gpu_allocation_jobs_get_distinct_devices(tmp_path, monkeypatch):
    """`salloc --gpus 4` then a local Snakemake run: slots among the allocation's GPUs, locked by UUID."""
    uuids = fake_nvidia_smi(tmp_path / "bin", 4)
    locks = tmp_path / "locks"
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "JOINTSEG_GPU_LOCK_DIR": str(locks)}
    monkeypatch.delenv("JOINTSEG_GPUS", raising=False)
    jobs = [_wrapped(probe(1.0), SLURM_JOB_ID="9", CUDA_VISIBLE_DEVICES="0,1,2,3", **env) for _ in range(2)]
    devices = [report(job)[0]["cvd"] for job in jobs]
    assert len(set(devices)) == 2 and set(devices) <= {"0", "1", "2", "3"}
    assert {p.name for p in locks.iterdir()} == {f"{uuids[int(d)]}.lock" for d in devices}


def test_zero_gpus_hide_the_devices_and_too_many_are_refused(four, tmp_path):
    locks = {"JOINTSEG_GPU_LOCK_DIR": str(tmp_path / "locks")}
    assert report(_wrapped(probe(), gpus_=0, **locks))[0]["cvd"] == ""  # a CPU job: torch sees no GPU
    job = _wrapped(probe(), gpus_=3, CUDA_VISIBLE_DEVICES="1,2", **locks)
    _, err = job.communicate(timeout=60)
    assert job.returncode != 0 and "3 GPUs requested per job but only 2 visible (1,2)" in err


def test_lock_dir_is_the_users_and_refuses_another_users(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_slot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.delenv("JOINTSEG_GPU_LOCK_DIR", raising=False)
    assert module.lock_dir() == Path(f"/tmp/jointseg-gpu-slots-{os.getuid()}")
    monkeypatch.setenv("JOINTSEG_GPU_LOCK_DIR", str(tmp_path / "mine"))
    assert module.lock_dir() == tmp_path / "mine" and (tmp_path / "mine").is_dir()
    uid = os.getuid()
    monkeypatch.setattr(module.os, "getuid", lambda: uid + 1)
    with pytest.raises(SystemExit, match="belongs to another user"):
        module.lock_dir()


def test_the_local_gpu_limit_counts_the_visible_devices(four, tmp_path):
    """`CUDA_VISIBLE_DEVICES=2,3 snakemake` on a 4-GPU machine: a `gpu` limit of 2, not 4."""
    project = project_copy(tmp_path / "p")
    env = {**QUIET, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    done = snakemake(project, "raw", env={**env, "CUDA_VISIBLE_DEVICES": "2,3"})
    assert provided_gpus(done.stdout + done.stderr) == "2"
    done = snakemake(project, "raw", "--forceall", env=env)
    assert provided_gpus(done.stdout + done.stderr) == "4"
