"""DVC around the Snakemake workflow, through the commands the README and docs/pipeline.md give.

`dvc repro` runs the demo study only (the paper study's stages are in
studies/paper/dvc.yaml), outputs are cached without upsetting Snakemake,
metrics, params and plots are visible, a profile given in SNAKEMAKE_PROFILE
reaches Snakemake, and `dvc push` + `dvc pull` in a fresh clone restore the
data bit-identically through the default remote under ~/.cache (HOME is a
temporary folder here). The `dvc repro` run is a second clean run of the quick
demo study, so it also checks reproducibility against the session's first run.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import DVC_FILES, QUICK_TRAIN, ROOT, VENV_BIN, planned_jobs, project_copy, run, snakemake

from jointseg.config import validate_config
from jointseg.reporting.dvc_plots import write_plot_tables
from jointseg.reporting.headline import headline_means

# The documented sequence (README.md and docs/pipeline.md, "DVC"), run literally below;
# between push and pull: `git clone <project> <clone> && cd <clone>`.
DOC_RUN = ("dvc repro", 'git add dvc.lock && git commit -m "Demo study results"', "dvc push")
DOC_PULL = "dvc pull dvc.yaml"
DOC_LOCK_AFTER_SNAKEMAKE = "dvc commit -f dvc.yaml"
DEMO_STAGES = {"download@demo", "study@demo"}
PAPER_FILE = "studies/paper/dvc.yaml"
GIT_ID = {
    "GIT_AUTHOR_NAME": "jointseg-test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "jointseg-test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> dict[str, str]:
    """Environment with a temporary HOME (the remote ~/.cache/jointseg/dvc-remote lands there)."""
    return {"HOME": str(tmp_path_factory.mktemp("home")), **GIT_ID}


def shell(cwd: Path, line: str, env: dict[str, str], **kw):
    """Run one documented command line as written."""
    return run(["bash", "-c", line], cwd, env=env, **kw)


def dvc(cwd: Path, env: dict[str, str], *args: str, **kw):
    return run([str(VENV_BIN / "dvc"), *args], cwd, env=env, **kw)


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, keyed by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def git_project(project: Path, env: dict[str, str]) -> Path:
    """Make ``project`` a git repository with everything committed."""
    for line in ("git init -q -b main", "git add -A", "git commit -q -m project"):
        shell(project, line, env)
    return project


def stage_items(path: Path) -> dict[str, dict]:
    """The ``foreach`` items of a dvc.yaml, per stage group (anchors resolved by YAML)."""
    stages = yaml.safe_load(path.read_text())["stages"]
    return {group: stage["foreach"] for group, stage in stages.items()}


def html_specs(html: str) -> dict[str, dict]:
    """The vega-lite spec of every plot in a `dvc plots show` page, keyed by the page's element id."""
    found = re.findall(r'<div id = "(\w+)">\s*<script type = "text/javascript">\s*var spec = (.*);$', html, re.M)
    return {element: json.loads(spec) for element, spec in found}


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, home) -> Path:
    """A DVC project (quick demo config) after the documented `dvc repro` and commit of dvc.lock."""
    project = project_copy(
        tmp_path_factory.mktemp("dvc") / "project", with_package=True, with_dvc=True, train=QUICK_TRAIN
    )
    git_project(project, home)
    shell(project, DOC_RUN[0], home)
    shell(project, DOC_RUN[1], home)
    return project


# --------------------------------------------------------------------------- fast tests
def test_dvc_config_as_shipped():
    config = (ROOT / ".dvc" / "config").read_text()
    assert "analytics = false" in config
    assert "remote = local" in config
    assert "url = ~/.cache/jointseg/dvc-remote" in config  # the same folder for every clone on the machine
    assert "type = copy" in config  # never a link that would carry a new timestamp
    assert "html_template = plots_page.html" in config  # the offline page (.dvc/plots_page.html)


@pytest.mark.parametrize("dvc_file, study", [("dvc.yaml", "demo"), (PAPER_FILE, "paper")])
def test_stage_items_and_plots_match_the_study_config(dvc_file, study):
    """Each study's raw folders, summary and plot series follow from its config file."""
    groups = stage_items(ROOT / dvc_file)
    assert set(groups) == {"download", "study"}
    assert groups["download"] == groups["study"] and set(groups["study"]) == {study}
    item = groups["study"][study]
    config = validate_config(yaml.safe_load((ROOT / item["config"]).read_text()), source=item["config"])
    assert config["study"] == study
    assert item["raw"] == [f"data/raw/{ds}" for ds in config["datasets"]]
    assert item["summary"] == f"results/{study}/summary"
    definitions = yaml.safe_load((ROOT / dvc_file).read_text())
    if study == "paper":  # a study that has not run must not make `dvc plots/metrics show` fail
        assert "plots" not in definitions and "metrics" not in definitions
        return
    plots = {Path(next(iter(p))).name: next(iter(p.values())) for p in definitions["plots"]}
    assert set(plots) == {f"{ds}_{kind}.csv" for ds in config["datasets"] for kind in ("learning_curves", "test_dice")}
    for ds in config["datasets"]:
        curves, dice = plots[f"{ds}_learning_curves.csv"], plots[f"{ds}_test_dice.csv"]
        assert (curves["template"], curves["x"], curves["y"]) == ("lines_by_variant", "step", "val_dice")
        assert (dice["template"], dice["x"], dice["y"]) == ("bars_by_variant", "dice", "variant")
    assert definitions["metrics"] == [f"results/{study}/summary/metrics.json"]


def test_bare_repro_covers_the_demo_only(tmp_path, home):
    """`dvc repro` without a target runs the stages of the top-level dvc.yaml: the demo's."""
    project = git_project(project_copy(tmp_path / "project", with_dvc=True, with_package=True), home)
    listed = dvc(project, home, "stage", "list", "--name-only").stdout.split()
    assert set(listed) == DEMO_STAGES
    everything = dvc(project, home, "stage", "list", "-R", ".", "--name-only").stdout.split()
    assert set(everything) == DEMO_STAGES | {f"{PAPER_FILE}:download@paper", f"{PAPER_FILE}:study@paper"}


def test_docs_give_the_tested_commands():
    for doc in ("README.md", "docs/pipeline.md"):
        text = (ROOT / doc).read_text()
        for line in (*DOC_RUN, DOC_PULL, DOC_LOCK_AFTER_SNAKEMAKE, "SNAKEMAKE_PROFILE=workflow/profiles/slurm"):
            assert line in text, f"{doc} lacks `{line}`"


def test_plot_tables_average_seeds_per_variant(tmp_path):
    """Learning curves: the seed mean at each validated step, empty where a variant did not
    validate; test Dice: the number metrics.json reports."""
    nan = float("nan")
    histories = {
        ("ds", "a", 0): pd.DataFrame({"step": [1, 2, 4], "val_dice": [nan, 0.2, 0.6]}),
        ("ds", "a", 1): pd.DataFrame({"step": [1, 2, 4], "val_dice": [nan, 0.4, nan]}),
        ("ds", "b", 0): pd.DataFrame({"step": [1, 2, 4], "val_dice": [nan, nan, 0.5]}),
        ("other", "a", 0): pd.DataFrame({"step": [2], "val_dice": [0.9]}),
    }
    metrics = pd.DataFrame(
        {
            "dataset": "ds",
            "variant": ["a", "a", "b", "b"],
            "seed": [0, 1, 0, 0],
            "case": ["c0", "c0", "c0", "c1"],
            "class": 1,
            "dice": [0.2, 0.4, 0.5, 0.7],
            "iou": 0.1,
            "hd95": 1.0,
            "assd": 1.0,
        }
    )
    written = write_plot_tables(histories, metrics, ["ds"], ["b", "a"], tmp_path)
    assert [p.name for p in written] == ["ds_learning_curves.csv", "ds_test_dice.csv"]
    # long: one row per variant and validated step (none where no seed of the variant validated)
    assert (tmp_path / "ds_learning_curves.csv").read_text() == "step,variant,val_dice\n4,b,0.5\n2,a,0.3\n4,a,0.6\n"
    assert (tmp_path / "ds_test_dice.csv").read_text() == "variant,dice\nb,0.6\na,0.3\n"
    assert headline_means(metrics)["ds"]["a"]["dice"] == pytest.approx(0.3)


# --------------------------------------------------------------------------- slow tests
@pytest.mark.slow
def test_repro_runs_the_demo_and_keeps_snakemake_up_to_date(reproduced, home):
    assert (reproduced / "results" / "demo" / "summary" / "summary.csv").is_file()
    assert sorted(p.name for p in (reproduced / "data" / "raw").iterdir()) == ["demo_isic", "demo_msd"]
    assert set(yaml.safe_load((reproduced / "dvc.lock").read_text())["stages"]) == DEMO_STAGES
    assert "up to date" in dvc(reproduced, home, "status", "dvc.yaml").stdout
    # DVC's caching left Snakemake's timestamps alone: nothing is stale for it.
    done = snakemake(reproduced, "-n", timeout=300)
    assert planned_jobs(done.stdout) == [], done.stdout
    again = dvc(reproduced, home, "repro")
    assert "Data and pipelines are up to date" in again.stdout
    assert "Running stage" not in again.stdout + again.stderr, again.stdout


@pytest.mark.slow
def test_metrics_and_params_are_visible(reproduced, home):
    shown = json.loads(dvc(reproduced, home, "metrics", "show", "--json").stdout)
    metrics = next(iter(shown.values()))["data"]["results/demo/summary/metrics.json"]["data"]
    assert 0 <= metrics["demo_isic"]["joint"]["dice"] <= 1
    assert metrics["demo_msd"]["none"]["runs"] == 1
    diff = dvc(reproduced, home, "metrics", "diff", "--json").stdout
    assert json.loads(diff) == {}  # workspace equals the committed version
    config_path = reproduced / "config" / "config.yaml"
    original = config_path.read_text()
    try:
        config = yaml.safe_load(original)
        config["train"]["iterations"] += 1
        config_path.write_text(yaml.safe_dump(config))
        params = json.loads(dvc(reproduced, home, "params", "diff", "--json").stdout)
        assert params["config/config.yaml"]["train.iterations"]["new"] == QUICK_TRAIN["iterations"] + 1
        assert "study@demo" in dvc(reproduced, home, "status", "dvc.yaml").stdout
    finally:
        config_path.write_text(original)


@pytest.mark.slow
def test_plots_show_renders_the_summary_tables(reproduced, home, tmp_path):
    """The HTML page carries every row of each plot table, one line per variant."""
    dvc(reproduced, home, "plots", "show", "-o", str(tmp_path / "plots"))
    specs = html_specs((tmp_path / "plots" / "index.html").read_text())
    plots_dir = reproduced / "results" / "demo" / "summary" / "plots"
    headline = json.loads((reproduced / "results" / "demo" / "summary" / "metrics.json").read_text())
    for ds in ("demo_isic", "demo_msd"):
        curves = pd.read_csv(plots_dir / f"{ds}_learning_curves.csv", dtype=str)
        assert list(curves.columns) == ["step", "variant", "val_dice"]
        assert list(dict.fromkeys(curves["variant"])) == [
            "none",
            "pointwise",
            "self",
            "joint",
            "unet",
            "attention_unet",
        ]
        spec = specs[f"results_demo_summary_plots_{ds}_learning_curves_csv"]
        drawn = {(v["step"], v["variant"], v["val_dice"]) for v in spec["data"]["values"]}
        assert drawn == set(zip(curves["step"], curves["variant"], curves["val_dice"]))
        assert spec["encoding"]["color"]["field"] == "variant"  # variants told apart by colour
        dice = pd.read_csv(plots_dir / f"{ds}_test_dice.csv", dtype=str)
        values = specs[f"results_demo_summary_plots_{ds}_test_dice_csv"]["data"]["values"]
        assert {(v["variant"], v["dice"]) for v in values} == set(zip(dice["variant"], dice["dice"]))
        # the same test Dice as `dvc metrics` (metrics.json)
        for variant, value in zip(dice["variant"], dice["dice"]):
            assert float(value) == pytest.approx(headline[ds][variant]["dice"], abs=1e-6)


@pytest.mark.slow
def test_profile_from_the_environment_reaches_snakemake(reproduced, home, tmp_path):
    """SNAKEMAKE_PROFILE passes through `dvc repro` to Snakemake (here: a dry run of every job)."""
    profile = tmp_path / "visible"
    profile.mkdir()
    (profile / "config.yaml").write_text("dry-run: true\nforceall: true\n")
    done = dvc(reproduced, {**home, "SNAKEMAKE_PROFILE": str(profile)}, "repro", "-s", "-f", "study@demo")
    out = done.stdout + done.stderr
    assert f"Using profiles {profile} and workflow specific profile" in out
    assert "This was a dry-run" in out
    assert sum(rule == "train" for rule, _ in planned_jobs(out)) == 12  # 2 data sets x (4 variants + 2 baselines)
    assert "up to date" in dvc(reproduced, home, "status", "dvc.yaml").stdout


@pytest.mark.slow
def test_documented_push_and_pull_restore_bit_identical_data(reproduced, home, tmp_path):
    shell(reproduced, DOC_RUN[2], home)
    remote = Path(home["HOME"]) / ".cache" / "jointseg" / "dvc-remote"
    assert any(p.is_file() for p in remote.rglob("*")), "dvc push wrote nothing to the default remote"
    clone = tmp_path / "clone"
    shell(tmp_path, f"git clone -q {reproduced} {clone}", home)
    assert not (clone / "data").exists()
    shell(clone, DOC_PULL, home)
    for folder in ("data/raw", "results/demo/summary"):
        original = tree_hashes(reproduced / folder)
        assert original, folder
        assert tree_hashes(clone / folder) == original, folder
    assert "up to date" in dvc(clone, home, "status", "dvc.yaml").stdout


@pytest.mark.slow
def test_lock_after_a_plain_snakemake_run(demo, home):
    """After `make demo` (Snakemake alone), `dvc repro` records dvc.lock without rerunning a job;
    `dvc commit -f dvc.yaml` records the same lock. In the session's demo project itself (DVC
    files added): in a copy elsewhere Snakemake would rerun every job, because rule params hold
    the absolute path of workflow/scripts/gpu_slot.py."""
    project = demo
    shutil.copytree(
        ROOT / "pipeline_src",
        project / "pipeline_src",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    for name in DVC_FILES:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, project / name)
    git_project(project, home)
    done = shell(project, DOC_RUN[0], home)
    out = done.stdout + done.stderr  # DVC's lines, then Snakemake's (on stderr)
    assert out.count("Nothing to be done") == 2, out  # both stages' Snakemake runs
    lock = (project / "dvc.lock").read_text()
    assert set(yaml.safe_load(lock)["stages"]) == DEMO_STAGES
    (project / "dvc.lock").unlink()
    shell(project, DOC_LOCK_AFTER_SNAKEMAKE, home)
    assert (project / "dvc.lock").read_text() == lock


@pytest.mark.slow
def test_two_clean_runs_give_identical_summaries(reproduced, demo):
    """Reproducibility (deterministic CPU mode): the `dvc repro` run and the plain
    Snakemake run of the session, in two separate project copies."""
    first, second = demo / "results" / "demo" / "summary", reproduced / "results" / "demo" / "summary"
    names = ["summary.csv", "metrics.json", "stats.csv", *(f"plots/{p.name}" for p in (first / "plots").iterdir())]
    assert len(names) == 7
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
