"""Run a command on GPUs no other concurrent job of this workflow is using.

    python workflow/scripts/gpu_slot.py --gpus 1 -- jointseg train ...

Snakemake counts the ``gpu`` resource but does not pin devices, so two jobs
started at once on a 4-GPU machine would both land on GPU 0. This wrapper
takes an exclusive ``fcntl`` lock on one lock file per device
(``$JOINTSEG_GPU_LOCK_DIR``, default ``.snakemake/gpu-slots/``), sets
``CUDA_VISIBLE_DEVICES`` to the devices it locked and ``exec``s the command;
the lock's file descriptors are inherited, so the slots stay taken exactly as
long as the command runs (also if it is killed: the kernel drops the lock).

Devices: ``$JOINTSEG_GPUS`` (comma-separated ids) if set, else ``nvidia-smi
-L``. Left alone (plain exec): under Slurm (``$SLURM_JOB_ID``: Slurm sets
``CUDA_VISIBLE_DEVICES`` itself), when ``CUDA_VISIBLE_DEVICES`` is already
set by the user, and on machines without GPUs.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from pathlib import Path

from jointseg.gpus import visible_devices  # the interpreter that runs Snakemake has jointseg


def acquire(devices: list[str], count: int, lock_dir: Path, poll: float = 0.5) -> tuple[list[str], list[int]]:
    """Lock ``count`` free devices (waiting if all are taken); return their ids and lock fds."""
    if count > len(devices):
        raise SystemExit(f"gpu_slot: {count} GPUs requested per job but only {len(devices)} visible "
                         f"({','.join(devices) or 'none'}); lower gpus_per_job")
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        got: list[tuple[str, int]] = []
        for device in devices:
            fd = os.open(lock_dir / f"gpu{device}.lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            got.append((device, fd))
            if len(got) == count:
                return [d for d, _ in got], [f for _, f in got]
        for _, fd in got:  # not enough free: release and retry (no partial hoarding)
            os.close(fd)
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=1, help="devices per job")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (use: gpu_slot.py --gpus N -- COMMAND ...)")

    pinned = "SLURM_JOB_ID" in os.environ or "CUDA_VISIBLE_DEVICES" in os.environ
    devices = [] if pinned or args.gpus <= 0 else visible_devices()
    if devices:
        lock_dir = Path(os.environ.get("JOINTSEG_GPU_LOCK_DIR", ".snakemake/gpu-slots"))
        chosen, fds = acquire(devices, args.gpus, lock_dir)
        for fd in fds:
            os.set_inheritable(fd, True)  # the lock lives as long as the command
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
        print(f"gpu_slot: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}", file=sys.stderr)
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
