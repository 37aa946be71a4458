"""Shared pytest set-up: keep every test offline, quiet and on a fixed thread count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# No telemetry, no network look-ups from the tools under test.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root folder."""
    return ROOT


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """A project copy where the quick demo study ran end to end: once per session, shared by
    tests/test_workflow.py and tests/test_dvc.py (see tests/workflow_helpers.py)."""
    from workflow_helpers import demo_project

    return demo_project(tmp_path_factory)


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The one-node Slurm cluster (two fake GPUs) of ci/slurm/setup_slurm.sh, started once
    for every cluster test (tests/cluster_helpers.py); skipped where it cannot be installed."""
    from cluster_helpers import start_slurm

    return start_slurm()
