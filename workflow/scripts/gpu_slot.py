"""Run a command on a GPU no other job of this user is using (the train and predict rules' wrapper).

    python workflow/scripts/gpu_slot.py --gpus N -- jointseg train ...

Snakemake counts the ``gpu`` resource but does not pin devices, so two jobs
started at once on a 4-GPU machine would both land on GPU 0. Every train and
predict job runs through this wrapper with its ``gpu`` resource as ``--gpus``
(resources are no rerun trigger, so moving between a CPU-only and a GPU machine
reruns nothing). It decides at run time:

- ``--gpus 0``: no GPU for this job: ``CUDA_VISIBLE_DEVICES=""``, the job runs on the CPU;
- no usable device (a CPU-only machine): the command runs as it is;
- under Slurm, when the allocation holds exactly the requested count: nothing to choose;
- otherwise: an exclusive ``fcntl`` lock on one lock file per device, among the
  devices ``CUDA_VISIBLE_DEVICES`` (or the Slurm allocation) exposes
  (:mod:`jointseg.gpus`); ``CUDA_VISIBLE_DEVICES`` is set to the locked one.

Locks are per user and per physical GPU (keyed by UUID), in
``$JOINTSEG_GPU_LOCK_DIR`` or ``/tmp/jointseg-gpu-slots-<uid>``, so two projects
of one user never share a device. The lock's file descriptor is inherited by the
command (``exec``): the slot is held exactly as long as the command runs, and a
kill releases it. ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` makes CUDA's indices
nvidia-smi's.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import sys
import time
from pathlib import Path

# the interpreter that runs Snakemake has jointseg
from jointseg.gpus import Gpu, visible_gpus


def lock_dir() -> Path:
    """``$JOINTSEG_GPU_LOCK_DIR``, else ``/tmp/jointseg-gpu-slots-<uid>`` (the same for all projects of a user)."""
    path = Path(os.environ.get("JOINTSEG_GPU_LOCK_DIR") or f"/tmp/jointseg-gpu-slots-{os.getuid()}")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid != os.getuid():  # another user's folder: its locks are not ours to trust
        raise SystemExit(f"gpu_slot: {path} belongs to another user; set JOINTSEG_GPU_LOCK_DIR to a folder of yours")
    return path


def _lock_file(folder: Path, gpu: Gpu) -> Path:
    return folder / (re.sub(r"[^A-Za-z0-9._-]", "_", gpu.key) + ".lock")


def acquire(gpus: list[Gpu], count: int, folder: Path, poll: float = 0.5) -> tuple[list[Gpu], list[int]]:
    """Lock ``count`` free devices of ``gpus`` (waiting while too few are free); their records and lock fds."""
    if count > len(gpus):
        raise SystemExit(
            f"gpu_slot: {count} GPUs requested per job but only {len(gpus)} visible "
            f"({','.join(g.id for g in gpus) or 'none'}); lower gpus_per_job"
        )
    waited = False
    while True:
        got: list[tuple[Gpu, int]] = []
        for gpu in gpus:
            fd = os.open(_lock_file(folder, gpu), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            got.append((gpu, fd))
            if len(got) == count:
                return [g for g, _ in got], [f for _, f in got]
        for _, fd in got:  # not enough free: release and retry (no partial hoarding)
            os.close(fd)
        if not waited:
            print(f"gpu_slot: all {len(gpus)} GPU(s) busy with other jobs of this user; waiting", file=sys.stderr)
            waited = True
        time.sleep(poll)


def pin(count: int) -> str | None:
    """Choose and lock the job's devices; the CUDA_VISIBLE_DEVICES value to run with (None: leave it)."""
    if count <= 0:
        return ""
    gpus = visible_gpus()
    if not gpus:
        return None
    if "SLURM_JOB_ID" in os.environ and len(gpus) == count:
        return None  # the allocation is the job's: nothing to choose, nothing to lock
    chosen, fds = acquire(gpus, count, lock_dir())
    for fd in fds:
        os.set_inheritable(fd, True)  # the lock lives as long as the command
    return ",".join(g.id for g in chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=1, help="devices per job (the job's gpu resource)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (use: gpu_slot.py --gpus N -- COMMAND ...)")
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's indices = nvidia-smi's
    devices = pin(args.gpus)
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
        if devices:
            print(f"gpu_slot: CUDA_VISIBLE_DEVICES={devices}", file=sys.stderr)
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
