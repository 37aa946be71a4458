"""bench/gpu_check.sh: the prepared GPU check must at least plan on a CPU machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_dry_run_prints_every_section():
    done = _run("--dry-run")
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(table) == 6
    assert "bf16 + channels_last" in done.stdout and ">= 1.8x" in done.stdout
    assert "joint / none <= 1.2x" in done.stdout
    assert "--resources gpu=1" in done.stdout


def test_compile_and_workflow_flags_change_the_plan():
    plain = _run("--dry-run").stdout
    assert "optional (--compile) - skipped" in plain
    flagged = _run("--dry-run", "--compile", "--skip-workflow").stdout
    assert "optional (--compile) - skipped" not in flagged
    assert "wall time (completes) - skipped" in flagged


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU message")
def test_without_gpu_it_says_so_and_fails():
    done = _run()
    assert done.returncode == 2
    assert "no CUDA GPU visible" in done.stderr
