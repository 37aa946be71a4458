"""Helpers shared by the workflow and DVC tests (tests/test_workflow.py, tests/test_dvc.py).

Snakemake and DVC run as subprocesses in a temporary copy of the project
(Snakefile, workflow/, config/, the default profile link) with the package
imported from this checkout, so the checkout is never written to. The
end-to-end demo run is shared by the whole session through the ``demo``
fixture (tests/conftest.py), which calls :func:`demo_project`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from jointseg.reporting.dvc_plots import write_page_template

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# The tests' demo study: the shipped config with a few training iterations, so
# the whole pipeline (every rule, both data sets, four variants) runs in minutes.
QUICK_TRAIN = {"iterations": 2, "val_every": 2, "checkpoint_every": 2, "batch_size": 2}
QUIET = {"JOINTSEG_MLFLOW": "0"}  # no MLflow tracking: tests that only look at the workflow

# What DVC needs besides the workflow: its stage files and settings.
DVC_FILES = (
    "dvc.yaml",
    "studies/paper/dvc.yaml",
    ".dvcignore",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvc/plots/lines_by_variant.json",
    ".dvc/plots/bars_by_variant.json",
)


def project_copy(
    dest: Path,
    *,
    with_package: bool = False,
    with_dvc: bool = False,
    train: dict | None = None,
    edit: dict | None = None,
    datasets: list[str] | None = None,
) -> Path:
    """Copy the workflow's files into ``dest``; optionally shrink the config's training.

    ``train`` is merged into ``config/config.yaml``'s ``train`` (written to the
    file, not passed as --config, so DVC sees it too); ``edit`` replaces
    top-level keys; ``datasets`` keeps only those data sets. ``with_package`` also copies ``pipeline_src`` (DVC hashes
    it), ``with_dvc`` the DVC files (:data:`DVC_FILES`). ``profiles/default``
    stays a link to ``workflow/profiles/default``, as in the checkout.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "Snakefile", dest / "Snakefile")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "workflow", dest / "workflow", ignore=ignore)  # follows the schema symlink
    shutil.copytree(ROOT / "config", dest / "config", ignore=ignore)
    shutil.copytree(ROOT / "profiles", dest / "profiles", symlinks=True)
    if with_package:
        shutil.copytree(ROOT / "pipeline_src", dest / "pipeline_src", ignore=ignore)
    if with_dvc:
        for name in DVC_FILES:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
        write_page_template(dest / ".dvc" / "plots_page.html")  # what `make setup` writes
    if train or edit or datasets:
        path = dest / "config" / "config.yaml"
        config = yaml.safe_load(path.read_text())
        config["train"] = {**config.get("train", {}), **(train or {})}
        config.update(edit or {})
        if datasets:
            config["datasets"] = {name: config["datasets"][name] for name in datasets}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def tool_env(project: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Snakemake/DVC subprocesses: the venv's tools, the package, no telemetry; then ``extra``."""
    env = dict(os.environ)
    bin_dirs = [str(VENV_BIN)]
    if not (VENV_BIN / "jointseg").exists():  # package not pip-installed: a shim on PATH
        shim_dir = project / ".test-bin"
        shim_dir.mkdir(exist_ok=True)
        shim = shim_dir / "jointseg"
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m jointseg.cli "$@"\n')
        shim.chmod(0o755)
        bin_dirs.insert(0, str(shim_dir))
    env["PATH"] = os.pathsep.join(bin_dirs + [env.get("PATH", "")])
    package = project / "pipeline_src" if (project / "pipeline_src").is_dir() else ROOT / "pipeline_src"
    env["PYTHONPATH"] = os.pathsep.join([str(package)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(
        DVC_NO_ANALYTICS="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        GIT_PYTHON_REFRESH="quiet",
        PYTHONHASHSEED="0",
    )
    env.pop("MLFLOW_TRACKING_URI", None)  # each project copy keeps its own mlflow.db
    env.update(extra or {})
    return env


def run(
    cmd: list[str], cwd: Path, timeout: float = 1500, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd`` with :func:`tool_env` (plus ``env``); on failure show its output and logs."""
    done = subprocess.run(cmd, cwd=cwd, env=tool_env(cwd, env), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        logs = "".join(f"\n--- {p}\n{p.read_text()[-3000:]}" for p in sorted((cwd / "logs").rglob("*.log")))
        pytest.fail(f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}{logs}")
    return done


def snakemake(cwd: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    """Run the venv's ``snakemake`` with ``args`` in ``cwd`` (see :func:`run`)."""
    return run([str(VENV_BIN / "snakemake"), *args], cwd, **kw)


def provided_gpus(output: str) -> str | None:
    """The `gpu` value of Snakemake's "Provided resources" line, or None when it lists none."""
    line = next((l for l in output.splitlines() if l.startswith("Provided resources:")), "")
    found = re.search(r"gpu=\D*(\d+)", line)
    return found.group(1) if found else None


def planned_jobs(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a ``snakemake -n`` output lists."""
    jobs: list[tuple[str, dict[str, str]]] = []
    for line in output.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            jobs.append((m.group(1), {}))
            continue
        m = re.match(r"^wildcards: (.*)$", line.strip())
        if m and jobs:
            jobs[-1][1].update(dict(kv.split("=", 1) for kv in m.group(1).split(", ")))
    return jobs


def job_counts(output: str) -> dict[str, int]:
    """Jobs per rule in a ``snakemake -n`` output."""
    counts: dict[str, int] = {}
    for rule, _ in planned_jobs(output):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy where the (quick) demo study has run to completion (the ``demo`` fixture runs it once)."""
    project = project_copy(tmp_path_factory.mktemp("demo"), train=QUICK_TRAIN)
    start = time.monotonic()
    snakemake(project, "--cores", "all", "--resources", "gpu=1")
    print(f"\nend-to-end demo workflow (quick config): {time.monotonic() - start:.0f} s")
    return project
