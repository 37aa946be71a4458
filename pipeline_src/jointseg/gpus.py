"""The GPUs this process may use, as the workflow's slot wrapper and its `gpu` limit see them.

No torch import: the Snakefile (which sizes the local ``gpu`` resource with it)
and ``workflow/scripts/gpu_slot.py`` (which pins each job to a free device) call
it before, or instead of, anything heavy.

The machine's devices come from ``$JOINTSEG_GPUS`` (comma-separated ids, an
override for tests and odd machines) or ``nvidia-smi -L`` (index and UUID, in
PCI bus order). ``CUDA_VISIBLE_DEVICES`` (set by the user, or by Slurm for a
job's allocation) then narrows them to the ones it names, by index or by UUID
(prefix), stopping at the first entry CUDA would not accept, as CUDA does. Jobs
run with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that CUDA's indices are
nvidia-smi's (CUDA's default order is fastest first).

Each device carries a lock key naming the physical GPU: its UUID when
nvidia-smi gives one. Without a UUID, the index is only meaningful on this
machine, and under Slurm (whose cgroups show every job its GPUs from index 0)
only inside this job: the key then carries the job id.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

# CUDA_VISIBLE_DEVICES values that hide every GPU (Slurm writes NoDevFiles for a job without GPUs)
NO_GPU_VALUES = ("", "-1", "nodevfiles", "none", "void")
_LISTING = re.compile(r"^GPU (\d+): .*?\(UUID: (\S+?)\)")


@dataclass(frozen=True)
class Gpu:
    """One usable device: ``id`` as CUDA_VISIBLE_DEVICES names it here, ``key`` the physical GPU's lock key."""

    id: str
    key: str


def machine_gpus() -> list[Gpu] | None:
    """The machine's devices: ``$JOINTSEG_GPUS``, else ``nvidia-smi -L``; None when nvidia-smi cannot run."""
    env = os.environ.get("JOINTSEG_GPUS")
    if env is not None:
        return [Gpu(d.strip(), _local_key(d.strip())) for d in env.split(",") if d.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = [_LISTING.match(line) for line in out.splitlines()]
    return [Gpu(m.group(1), m.group(2)) for m in found if m]  # MIG sub-device lines are skipped


def _local_key(index: str) -> str:
    """The lock key of a device known by its index only (see the module docstring)."""
    job = os.environ.get("SLURM_JOB_ID")
    return f"slurm-job{job}-gpu{index}" if job else f"gpu{index}"


def cuda_visible() -> list[str] | None:
    """The entries of ``$CUDA_VISIBLE_DEVICES``; None when unset, [] when it hides every GPU."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    if value.strip().lower() in NO_GPU_VALUES:
        return []
    return [e.strip() for e in value.split(",")]


def _narrow(gpus: list[Gpu] | None, entries: list[str]) -> list[Gpu]:
    """The devices ``entries`` (CUDA_VISIBLE_DEVICES) name, in their order, as CUDA reads them."""
    chosen: list[Gpu] = []
    for entry in entries:
        if gpus is None:  # no listing (no nvidia-smi in this container): the entries are the devices
            match = Gpu(entry, entry if entry.startswith(("GPU-", "MIG-")) else _local_key(entry))
        elif entry.isdigit():
            match = next((g for g in gpus if g.id == entry), None)
        elif entry.startswith("MIG-"):
            match = Gpu(entry, entry)  # a MIG instance: its UUID names it on the whole machine
        else:
            found = [g for g in gpus if entry.startswith("GPU-") and g.key.startswith(entry)]
            match = Gpu(entry, found[0].key) if len(found) == 1 else None
        if match is None:  # CUDA ignores an invalid entry and every one after it
            break
        if match.key not in {g.key for g in chosen}:
            chosen.append(Gpu(entry, match.key))
    return chosen


def visible_gpus() -> list[Gpu]:
    """The devices this process may use (the machine's, narrowed by ``CUDA_VISIBLE_DEVICES``)."""
    listed, entries = machine_gpus(), cuda_visible()
    if entries is None:
        return listed or []
    return _narrow(listed, entries)


def visible_devices() -> list[str]:
    """The ids of :func:`visible_gpus` (what a job's ``CUDA_VISIBLE_DEVICES`` may name)."""
    return [g.id for g in visible_gpus()]
