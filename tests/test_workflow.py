"""The Snakemake workflow: config validation, DAGs of both study configs, the
end-to-end demo, no-op reruns, per-variant reruns, reproducibility, GPU slots.

Snakemake runs as a subprocess in a temporary copy of the project (Snakefile,
workflow/, config/) with the package imported from this checkout, so the
checkout is never written to. The end-to-end run is shared by every test of
the session through the ``demo`` fixture (tests/conftest.py, helpers in
tests/workflow_helpers.py; also used by tests/test_dvc.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT, VENV_BIN, job_counts, planned_jobs, project_copy, snakemake

DEMO_DATASETS = ["demo_isic", "demo_msd"]
DEMO_VARIANTS = ["none", "pointwise", "self", "joint"]
DEMO_RUNS = DEMO_VARIANTS + ["unet", "attention_unet"]  # the variants, then the baselines
RUN_RULES = ["resolve", "train", "predict", "evaluate"]


def study_jobs(runs: int, attention_runs: int) -> dict[str, int]:
    """The job counts of a study of two data sets and ``runs`` runs (each resolved, trained, predicted,
    evaluated), ``attention_runs`` of them with an attention block (each also measured: attention_stats)."""
    once = {"aggregate": 1, "claims": 1, "headline_metrics": 1, "provenance": 1, "test_metrics_to_mlflow": 1, "all": 1}
    return {"download": 2, "prepare": 2, **{r: runs for r in RUN_RULES}, "attention_stats": attention_runs, **once}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A fresh project copy for dry runs (nothing executed in it)."""
    return project_copy(tmp_path_factory.mktemp("wf"))


# --------------------------------------------------------------------------- fast tests
@pytest.mark.parametrize(
    "override, expected",
    [
        ("seeds=abc", "invalid value at 'seeds': 'abc' is not of type 'array'"),
        ("bogus_key=1", "'bogus_key' was unexpected"),
    ],
)
def test_invalid_config_stops_with_one_clear_line(workdir, override, expected):
    done = snakemake(workdir, "-n", "--config", override, check=False, timeout=300)
    assert done.returncode != 0
    errors = [l for l in (done.stdout + done.stderr).splitlines() if "error" in l.lower()]
    assert len(errors) == 1, done.stdout + done.stderr
    assert errors[0].startswith("jointseg workflow: error: config/config.yaml")
    assert expected in errors[0]
    assert "Traceback" not in done.stderr


def test_demo_dry_run_lists_every_job(workdir):
    """The demo DAG through the local profile; nested --config values keep their types."""
    out = snakemake(
        workdir,
        "-n",
        "--profile",
        "workflow/profiles/local",
        "--config",
        "train={iterations: 7, lr: 1e-4, amp: 'off'}",
        timeout=300,
    ).stdout
    counts = job_counts(out)
    runs = len(DEMO_DATASETS) * len(DEMO_RUNS)
    assert counts == study_jobs(runs, len(DEMO_DATASETS) * (len(DEMO_VARIANTS) - 1))  # every variant but `none`
    trained = {(w["dataset"], w["variant"], w["seed"]) for r, w in planned_jobs(out) if r == "train"}
    assert trained == {(d, v, "0") for d in DEMO_DATASETS for v in DEMO_RUNS}
    effective = yaml.safe_load((workdir / "results" / "demo" / ".pipeline" / "config.yaml").read_text())
    assert effective["train"]["iterations"] == 7 and effective["train"]["lr"] == 1e-4
    assert effective["train"]["amp"] == "off"
    assert effective["train"]["batch_size"] == 4  # the rest of `train` is kept


def test_configfile_strings_keep_their_type(workdir):
    """Only --config entries are retyped: a quoted "2024" in a --configfile stays a string."""
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["study"] = "2024"
    (workdir / "config" / "study2024.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(workdir, "-n", "--configfile", "config/study2024.yaml", timeout=300)
    effective = yaml.safe_load((workdir / "results" / "2024" / ".pipeline" / "config.yaml").read_text())
    assert effective["study"] == "2024", done.stdout


def test_rules_do_not_need_jointseg_on_path(workdir):
    """Rules and hooks call `<python> -m jointseg`: a PATH without the venv still plans and runs hooks."""
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    env["PATH"] = "/usr/bin:/bin"
    done = subprocess.run(
        [str(VENV_BIN / "snakemake"), "-n", "-p", "--cores", "1"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    shell_lines = [l for l in done.stdout.splitlines() if " -m jointseg " in l]
    assert shell_lines, done.stdout
    assert not [l for l in done.stdout.splitlines() if l.strip().startswith("jointseg ")]


def test_paper_dry_run_lists_every_job(workdir):
    out = snakemake(workdir, "-n", "--configfile", "config/paper.yaml", timeout=300).stdout
    paper = yaml.safe_load((workdir / "config" / "paper.yaml").read_text())
    # The paper study: every attention variant, the joint alternatives and controls, CBAM,
    # the U-Net and the cited baselines, 3 seeds (tests/test_paper_config.py checks the lists).
    assert paper["seeds"] == [0, 1, 2]
    runs = len(paper["datasets"]) * (len(paper["variants"]) + len(paper["baselines"])) * len(paper["seeds"])
    assert runs == 72
    attention_runs = len(paper["datasets"]) * (len(paper["variants"]) - 1) * len(paper["seeds"])  # not `none`
    assert job_counts(out) == study_jobs(runs, attention_runs)
    # --configfile replaces the default config: no demo data set sneaks in.
    assert not any(w.get("dataset", "").startswith("demo") for _, w in planned_jobs(out))
    assert {w["variant"] for r, w in planned_jobs(out) if r == "train"} == {*paper["variants"], *paper["baselines"]}


def test_slurm_profile_is_valid_for_snakemake(workdir):
    """The cluster profile parses (an unknown key would fail) and keeps the full DAG.
    (The local profile is used above, the ci profile in tests/test_slurm.py.)"""
    out = snakemake(workdir, "-n", "--profile", "workflow/profiles/slurm", timeout=300).stdout
    assert job_counts(out)["train"] == len(DEMO_DATASETS) * len(DEMO_RUNS)
    for key in ("slurm_partition", "slurm_account"):
        assert key in (ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text()


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_demo_study_end_to_end(demo):
    summary = pd.read_csv(demo / "results" / "demo" / "summary" / "summary.csv")
    assert {(d, v) for d, v in zip(summary["dataset"], summary["variant"])} == {
        (d, v) for d in DEMO_DATASETS for v in DEMO_RUNS
    }
    for dataset in DEMO_DATASETS:
        for variant in DEMO_RUNS:
            metrics = pd.read_csv(demo / "results" / "demo" / dataset / variant / "seed0" / "metrics.csv")
            assert metrics["dice"].between(0, 1).all()
    headline = yaml.safe_load((demo / "results" / "demo" / "summary" / "metrics.json").read_text())
    assert set(headline) == set(DEMO_DATASETS)
    assert set(headline["demo_msd"]) == set(DEMO_RUNS)
    provenance = yaml.safe_load((demo / "results" / "demo" / "summary" / "provenance.json").read_text())
    assert set(provenance["data"]) == set(DEMO_DATASETS)
    assert len(provenance["runs"]) == len(DEMO_DATASETS) * len(DEMO_RUNS)
    for rule in ("download", "prepare", "train", "predict", "evaluate", "aggregate", "attention_stats", "claims"):
        assert list((demo / "benchmarks" / rule).rglob("*.tsv")), f"no benchmark for {rule}"
    # the claims: one verdict per claim, attention statistics of every variant with attention, in the report
    summary_dir = demo / "results" / "demo" / "summary"
    claims = pd.read_csv(summary_dir / "claims.csv")
    assert len(claims) == 6 and set(claims["verdict"]) <= {"supported", "not supported", "inconclusive"}
    attention = pd.read_csv(summary_dir / "attention_stats.csv")
    assert {(d, v) for d, v in zip(attention["dataset"], attention["variant"])} == {
        (d, v) for d in DEMO_DATASETS for v in DEMO_VARIANTS if v != "none"
    }
    assert "\n## Claims\n" in (summary_dir / "report.md").read_text()
    # MLflow: the invocation's parent run is FINISHED and every training is nested under it,
    # with its test scores (named as in summary.csv) and no Snakemake marker as an artifact.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{demo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("jointseg-demo").experiment_id])
    parents = [r for r in runs if r.data.tags.get("jointseg.kind") == "pipeline"]
    children = [r for r in runs if r.data.tags.get("jointseg.kind") == "training"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == len(DEMO_DATASETS) * len(DEMO_RUNS)
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert 0 <= child.data.metrics["test_dice_mean"] <= 1

    def artifact_names(run_id: str, path: str | None = None) -> list[str]:
        names = []
        for item in client.list_artifacts(run_id, path):
            names.append(item.path)
            if item.is_dir:
                names += artifact_names(run_id, item.path)
        return names

    uploaded = artifact_names(parents[0].info.run_id)
    assert any(name.endswith("summary.csv") for name in uploaded)
    assert not [name for name in uploaded if Path(name).name.startswith(".snakemake")]


@pytest.mark.slow
def test_second_invocation_has_nothing_to_do(demo):
    done = snakemake(demo, "-n", timeout=300)
    assert "Nothing to be done" in done.stdout + done.stderr
    assert planned_jobs(done.stdout) == []


@pytest.mark.slow
def test_changing_one_variant_reruns_only_that_variant(demo):
    done = snakemake(demo, "-n", "--config", "variant_overrides={self: {train: {iterations: 3}}}", timeout=300)
    jobs = planned_jobs(done.stdout)
    per_run = {(r, w["dataset"], w["variant"]) for r, w in jobs if "variant" in w}
    assert per_run == {(r, d, "self") for r in (*RUN_RULES, "attention_stats") for d in DEMO_DATASETS}
    assert {r for r, w in jobs if "variant" not in w} == {
        "aggregate",
        "claims",
        "headline_metrics",
        "provenance",
        "test_metrics_to_mlflow",
        "all",
    }
    # Editing the YAML works the same way (and the effective config is no input:
    # the dry run above rewrote it without making anything stale).
    config_path = demo / "config" / "config.yaml"
    original = config_path.read_text()
    try:
        config = yaml.safe_load(original)
        config["variant_overrides"] = {"joint": {"model": {"attention_options": {"chunk": 256}}}}
        config_path.write_text(yaml.safe_dump(config))
        jobs = planned_jobs(snakemake(demo, "-n", timeout=300).stdout)
        assert {w["variant"] for r, w in jobs if r == "train"} == {"joint"}
    finally:
        config_path.write_text(original)
    assert "Nothing to be done" in snakemake(demo, "-n", timeout=300).stdout


@pytest.mark.slow
def test_report_builds_with_tables_and_figures(demo):
    snakemake(demo, "--report", "report.html", timeout=600)
    html = (demo / "report.html").read_text(errors="replace")
    assert "summary.csv" in html and "metrics.json" in html
    assert ".png" in html
    assert "Nothing to be done" in snakemake(demo, "-n", timeout=300).stdout
