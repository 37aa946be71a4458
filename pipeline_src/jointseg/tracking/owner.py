"""Which process owns a RUNNING run, and whether it is still alive.

A run killed with ``kill -9`` (or whose machine rebooted) never closes itself:
it stays RUNNING for ever. Each run therefore records its owner (host, pid and
the pid's start time, so that a recycled pid is not mistaken for the owner); a
later ``jointseg track start`` on the same host marks runs whose owner is gone
as KILLED. Runs owned on another host are left alone: their owner cannot be
checked from here.
"""

from __future__ import annotations

import os
import socket

HOST_TAG = "jointseg.owner.host"
PID_TAG = "jointseg.owner.pid"
START_TAG = "jointseg.owner.started"


def _start_time(pid: int) -> float | None:
    """The process's start time (seconds since the epoch), None if unknown or no such process."""
    try:
        import psutil  # a Snakemake dependency; without it pid liveness alone is checked
    except ImportError:
        return None
    try:
        return float(psutil.Process(pid).create_time())
    except Exception:  # noqa: BLE001 - NoSuchProcess, AccessDenied, ...
        return None


def owner_tags(pid: int | None = None) -> dict[str, str]:
    """Tags naming ``pid`` (default: this process) on this host as a run's owner."""
    pid = os.getpid() if pid is None else int(pid)
    started = _start_time(pid)
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), START_TAG: "" if started is None else f"{started:.2f}"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return False
    return True


def owner_gone(tags: dict[str, str]) -> bool:
    """True when the tags name an owner on this host that no longer runs.

    False when the owner is alive, lives on another host, or is not recorded.
    """
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False
    pid = int(tags[PID_TAG])
    if not _alive(pid):
        return True
    recorded, now = tags.get(START_TAG), _start_time(pid)
    if recorded and now is not None:
        return abs(float(recorded) - now) > 1.0  # the pid now belongs to another process
    return False
