"""Shared pieces of the cluster tests (tests/test_slurm*.py, tests/test_mlflow_server.py).

- :func:`start_slurm`: the one-node test cluster of ci/slurm/setup_slurm.sh (two fake
  GPUs), started once per session by the ``slurm_cluster`` fixture (tests/conftest.py);
- :func:`documented_block` / :func:`documented_line`: the commands of docs/pipeline.md,
  which the tests run as written there (a test swaps only what a site fills in);
- :func:`submitted_jobs` / :func:`slurm_job`: the Slurm jobs of a Snakemake run;
- :class:`ProcessWatch`: what the jobs' processes really see (their environment),
  read from /proc while a study runs on this machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "pipeline.md"
SLURM_SETUP = ROOT / "ci" / "slurm" / "setup_slurm.sh"
CANNOT_INSTALL = 3  # exit status of the ci/ set-up scripts for "not root / no apt-get"


def run_setup_script(script: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Run a ci/ set-up script; skip the test (printing why) when it cannot install; its stdout."""
    if shutil.which("bash") is None:
        pytest.skip(f"no bash to run {script.name}")
    done = subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if done.returncode == CANNOT_INSTALL:
        reason = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1]
        print(f"\n{script.name}: test skipped: {reason}")
        pytest.skip(f"{script.name} cannot install here: {reason}")
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def start_slurm() -> str:
    """A running one-node Slurm cluster with two GPUs (started here if needed); ``sinfo``'s node line."""
    run_setup_script(SLURM_SETUP)
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t %c %G"], capture_output=True, text=True, timeout=60)
    assert re.search(r"\b(idle|mix)\b", nodes.stdout) and "gpu:" in nodes.stdout, nodes.stdout + nodes.stderr
    return nodes.stdout


def documented_block(heading: str) -> str:
    """The first ```bash block under the docs/pipeline.md heading that starts with ``heading``."""
    text = DOCS.read_text()
    section = re.search(rf"^###* {re.escape(heading)}.*?```bash\n(.*?)```", text, re.S | re.M)
    assert section, f"docs/pipeline.md has no '{heading}' section with a bash block"
    return section.group(1)


def documented_line(heading: str, starts: str) -> str:
    """The one command of that block starting with ``starts`` (continuation lines joined)."""
    block = documented_block(heading).replace("\\\n", " ")
    lines = [ln.strip() for ln in block.splitlines() if ln.strip().startswith(starts)]
    assert len(lines) == 1, f"docs/pipeline.md '{heading}': expected one '{starts}' line in:\n{block}"
    return re.sub(r"[ \t]+", " ", lines[0].split("  #")[0]).strip()


def replace_once(command: str, old: str, new: str) -> str:
    """``command`` with ``old`` replaced; fails when the documented command no longer has it."""
    assert command.count(old) == 1, f"expected '{old}' once in: {command}"
    return command.replace(old, new)


def submitted_jobs(log: str) -> dict[str, str]:
    """Slurm job id -> rule of every job a Snakemake run submitted (from its log)."""
    jobs = {}
    for jobid, path in re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)", log):
        rule = re.search(r"/rule_(\w+?)/", path)
        jobs[jobid] = rule.group(1) if rule else "?"
    return jobs


def slurm_job(jobid: str) -> dict[str, str]:
    """``scontrol show job -d`` of a job as a dict (kept MinJobAge = 300 s after it ends)."""
    out = subprocess.run(["scontrol", "-o", "-d", "show", "job", jobid], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return dict(re.findall(r"(\S+?)=(\S*)", out.stdout))


def slurm_job_states() -> dict[str, str]:
    """Job id -> JobState of every job the controller still knows (``scontrol -o show job``)."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return dict(re.findall(r"^JobId=(\d+) .*?\bJobState=(\S+)", out.stdout, re.M))


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # the process ended meanwhile
        return None


class ProcessWatch:
    """Polls /proc for ``python -m jointseg <command>`` processes working in ``project``.

    Records each one's environment (as it was when the process started, i.e. after any
    wrapper's exec), its Slurm job's record at that moment (``scontrol show job -d``)
    and every poll at which it was alive, so a test can check which devices the jobs
    saw and which jobs ran at the same time.
    """

    def __init__(self, project: Path, commands: tuple[str, ...] = ("train", "predict"), every: float = 0.2):
        self.project, self.commands, self.every = project.resolve(), commands, every
        self.seen: dict[int, dict] = {}  # pid -> {"command", "env", "polls"}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._poll = 0

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._poll += 1
            for proc in Path("/proc").glob("[0-9]*"):
                self._look(proc)
            time.sleep(self.every)

    def _look(self, proc: Path) -> None:
        cmdline = _read(proc / "cmdline")
        if not cmdline:
            return
        argv = cmdline.decode(errors="replace").split("\0")
        # the interpreter running `-m jointseg <command>` itself (not a wrapper naming it)
        command = argv[3] if len(argv) > 3 and argv[1:3] == ["-m", "jointseg"] else None
        if command not in self.commands:
            return
        try:
            if Path(os.readlink(proc / "cwd")).resolve() != self.project:
                return
        except OSError:
            return
        pid = int(proc.name)
        if pid not in self.seen:
            # environ and stat first, before the slow scontrol call: a short-lived child (between
            # fork and exec) may be gone by then, and without its parent id it would pass for a job.
            environ, stat = _read(proc / "environ"), _read(proc / "stat")
            if environ is None or not stat:
                return  # ended meanwhile; a job's own process lives long enough for the next poll
            env = dict(kv.split("=", 1) for kv in environ.decode(errors="replace").split("\0") if "=" in kv)
            ppid = int(stat.rsplit(b")", 1)[-1].split()[1])
            # Slurm's record while the job runs (its GPU indices are gone once it ends)
            job = slurm_job(env["SLURM_JOB_ID"]) if "SLURM_JOB_ID" in env else None
            self.seen[pid] = {"command": command, "env": env, "job": job, "ppid": ppid, "polls": set()}
        self.seen[pid]["polls"].add(self._poll)

    def processes(self, command: str) -> list[dict]:
        """The recorded processes running ``command`` (not their own children caught between
        fork and exec, e.g. a `git` call, which briefly show the same command line)."""
        return [p for p in self.seen.values() if p["command"] == command and p["ppid"] not in self.seen]
