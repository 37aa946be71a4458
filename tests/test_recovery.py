"""After a hard crash, the README's "After a crash" commands finish the study with identical results.

The (quick) demo study starts as the README's main command, a plain
`snakemake` with the default profile (profiles/default), in its own process
group; the whole group (Snakemake and its jobs) gets SIGKILL while a training
job runs. Then the README's commands run exactly as written, and the summary
must be byte-identical to the session's uninterrupted run (`demo_project`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from workflow_helpers import QUICK_TRAIN, ROOT, VENV_BIN, demo_project, project_copy, run, tool_env

SUMMARY_CSV = Path("results/demo/summary/summary.csv")


def readme_crash_commands() -> list[str]:
    """The lines of the bash block in README.md's "After a crash" section."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## After a crash\n(.*?)^## ", text, re.S | re.M)
    assert section, "README.md has no 'After a crash' section"
    block = re.search(r"```bash\n(.*?)```", section.group(1), re.S)
    assert block, section.group(1)
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def kill_during_training(project: Path, timeout: float = 1200) -> Path:
    """Start `snakemake` in its own process group; SIGKILL the group once a train job runs.

    Returns the run folder of the training job that was cut short.
    """
    proc = subprocess.Popen(
        [str(VENV_BIN / "snakemake")],
        cwd=project,
        env=tool_env(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            # The shell redirect creates the log as the job starts; its run is unfinished until final.pt.
            started = sorted((project / "logs" / "train").rglob("*.log")) if (project / "logs").is_dir() else []
            if started:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
                log = started[0].relative_to(project / "logs" / "train")
                dataset, variant, seed = log.parts[0], log.parts[1], log.stem
                return project / "results" / "demo" / dataset / variant / seed
            assert proc.poll() is None, f"snakemake ended (exit {proc.returncode}) before any training job"
            time.sleep(0.2)
        pytest.fail("no training job started in time")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)


@pytest.mark.slow
def test_readme_commands_recover_a_killed_study(tmp_path, tmp_path_factory):
    clean = demo_project(tmp_path_factory)
    project = project_copy(tmp_path / "project", train=QUICK_TRAIN)

    cut_short = kill_during_training(project)
    assert not (cut_short / "checkpoints" / "final.pt").exists(), "the kill came after training finished"
    assert not (project / SUMMARY_CSV).exists()
    # The README's claim: the same command alone stops on the dead process's lock.
    again = run([str(VENV_BIN / "snakemake")], project, timeout=600, check=False)
    assert again.returncode != 0 and "cannot be locked" in (again.stdout + again.stderr).lower()

    commands = readme_crash_commands()
    assert commands == ["snakemake --unlock", "snakemake"]
    for command in commands:
        run(["bash", "-c", command], project, timeout=1500)
    assert (project / SUMMARY_CSV).read_bytes() == (clean / SUMMARY_CSV).read_bytes()
    assert (cut_short / "checkpoints" / "final.pt").is_file()
