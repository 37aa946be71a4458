"""bench/gpu_check.sh: the prepared GPU check must plan on a CPU machine, and its rows must run
(`--smoke`: the same code on the CPU, tiny) and reach the terminal one by one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), *args], capture_output=True, text=True, env=ENV, timeout=300
    )


def _rows(out: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.split("|")[1:-1]]
        for line in out.splitlines()
        if line.startswith("| ") and line[2].isdigit()
    ]


def test_dry_run_prints_every_section():
    done = _run("--dry-run")
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert [r[0] for r in rows] == [str(i) for i in range(1, 10)]
    what = " ".join(r[1] for r in rows)
    for setting in ("fp32, TF32 off", "fp32, TF32 on", "bf16 + channels_last", "attention follows autocast"):
        assert setting in what
    assert "fp16 + GradScaler" in what and "150 iterations, MLflow off, --resources gpu=1" in what
    assert ">= 1.8x" in done.stdout and "joint / none <= 1.2x" in done.stdout


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


@pytest.mark.slow
def test_smoke_rows_run_and_arrive_one_by_one():
    """Every row of the CUDA path's code runs (on the CPU), and the first reaches the pipe while the
    check still runs: a crash or the time limit cannot take the finished rows with it."""
    command = ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--smoke"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("| 1 |"):
            assert proc.poll() is None  # still measuring the next rows
    proc.wait(timeout=600)
    out = "".join(lines)
    assert proc.returncode == 0, out + proc.stderr.read()
    rows = _rows(out)
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5", "7", "8"]  # no compile, no workflow in a smoke run
    assert all(r[2].endswith(" ms") and r[3] == "n/a" and "error" not in r[2] for r in rows)
    # fp16 + GradScaler reports its skipped steps (how many: tests/test_amp_matrix.py on why tiny runs skip)
    assert re.search(r"over fp32; [012] of 2 skipped$", rows[4][4])
