"""DVC around the Snakemake workflow: `dvc repro` runs the study, outputs are
cached without upsetting Snakemake, metrics and params are visible, and
`dvc push` + `dvc pull` restore the data bit-identically in a fresh clone.

The `dvc repro` run is a second clean run of the (quick) demo study, so it also
checks reproducibility against the session's first run (tests/test_workflow.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from test_workflow import (QUICK_TRAIN, ROOT, VENV_BIN, demo_project, planned_jobs, project_copy, run,
                           snakemake)

GIT = ["git", "-c", "user.name=jointseg-test", "-c", "user.email=test@example.invalid",
       "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]


def dvc(cwd: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return run([str(VENV_BIN / "dvc"), *args], cwd, **kw)


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run([*GIT, *args], cwd)


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, keyed by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def dvc_project(dest: Path) -> Path:
    """A git repository holding the project with the quick demo config, DVC set up as shipped."""
    project_copy(dest, with_package=True, train=QUICK_TRAIN)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy2(ROOT / name, dest / name)
    (dest / ".dvc").mkdir()
    shutil.copy2(ROOT / ".dvc" / "config", dest / ".dvc" / "config")
    shutil.copy2(ROOT / ".dvc" / ".gitignore", dest / ".dvc" / ".gitignore")
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "project")
    return dest


_REPRO: dict[str, Path] = {}


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Path:
    """A DVC project after `dvc repro` and a commit of its dvc.lock."""
    if "path" not in _REPRO:
        project = dvc_project(tmp_path_factory.mktemp("dvc") / "project")
        dvc(project, "repro")
        git(project, "add", "-A")
        git(project, "commit", "-q", "-m", "reproduce the study")
        _REPRO["path"] = project
    return _REPRO["path"]


def test_dvc_config_as_shipped():
    config = (ROOT / ".dvc" / "config").read_text()
    assert "analytics = false" in config
    assert "remote = local" in config and "url = ../.dvc-remote" in config  # relative: no absolute path
    assert "type = copy" in config  # never a link that would carry a new timestamp
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for s in stages.values() for o in s["outs"]]
    assert outs == ["data/raw", "results/demo/summary"]


def test_dvc_sees_the_pipeline_without_running_it(tmp_path):
    project = dvc_project(tmp_path / "project")
    dag = dvc(project, "dag", "--md").stdout
    assert "download" in dag and "study" in dag
    status = dvc(project, "status").stdout
    assert "changed outs" in status or "always changed" in status or "deleted" in status


@pytest.mark.slow
def test_repro_runs_the_study_and_keeps_snakemake_up_to_date(reproduced):
    assert (reproduced / "results" / "demo" / "summary" / "summary.csv").is_file()
    assert (reproduced / "data" / "raw" / "demo_isic" / ".complete.json").is_file()
    assert "up to date" in dvc(reproduced, "status").stdout
    # DVC's caching left Snakemake's timestamps alone: nothing is stale for it.
    done = snakemake(reproduced, "-n", timeout=300)
    assert planned_jobs(done.stdout) == [], done.stdout
    assert "up to date" in dvc(reproduced, "repro").stdout.lower()


@pytest.mark.slow
def test_metrics_and_params_are_visible(reproduced):
    shown = json.loads(dvc(reproduced, "metrics", "show", "--json").stdout)
    metrics = next(iter(shown.values()))["data"]["results/demo/summary/metrics.json"]["data"]
    assert 0 <= metrics["demo_isic"]["joint"]["dice"] <= 1
    assert metrics["demo_msd"]["none"]["runs"] == 1
    assert "demo_isic.joint.dice" in dvc(reproduced, "metrics", "show").stdout.replace("\t", " ") or \
        "dice" in dvc(reproduced, "metrics", "show").stdout
    diff = dvc(reproduced, "metrics", "diff", "--json").stdout
    assert json.loads(diff or "{}") == {}  # workspace equals the committed version
    config_path = reproduced / "config" / "config.yaml"
    original = config_path.read_text()
    try:
        config = yaml.safe_load(original)
        config["train"]["iterations"] += 1
        config_path.write_text(yaml.safe_dump(config))
        params = json.loads(dvc(reproduced, "params", "diff", "--json").stdout)
        changed = params["config/config.yaml"]
        assert changed["train.iterations"]["new"] == QUICK_TRAIN["iterations"] + 1
        assert "study" in dvc(reproduced, "status").stdout
    finally:
        config_path.write_text(original)


@pytest.mark.slow
def test_push_then_pull_into_a_fresh_clone_is_bit_identical(reproduced, tmp_path):
    dvc(reproduced, "push")
    remote = reproduced / ".dvc-remote"
    assert any(remote.rglob("*")), "dvc push wrote nothing to the default remote"
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(reproduced), str(clone)], tmp_path)
    assert not (clone / "data").exists()
    # The shipped remote is relative to the project; a clone elsewhere points at the original's.
    dvc(clone, "remote", "modify", "--local", "local", "url", str(remote))
    dvc(clone, "pull")
    for folder in ("data/raw", "results/demo/summary"):
        original = tree_hashes(reproduced / folder)
        assert original, folder
        assert tree_hashes(clone / folder) == original, folder
    assert "up to date" in dvc(clone, "status").stdout


@pytest.mark.slow
def test_two_clean_runs_give_identical_summaries(reproduced, tmp_path_factory):
    """Reproducibility (deterministic CPU mode): the `dvc repro` run and the
    plain Snakemake run of the session, in two separate project copies."""
    first = demo_project(tmp_path_factory) / "results" / "demo" / "summary"
    second = reproduced / "results" / "demo" / "summary"
    assert (first / "summary.csv").read_bytes() == (second / "summary.csv").read_bytes()
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()
    assert (first / "stats.csv").read_bytes() == (second / "stats.csv").read_bytes()
