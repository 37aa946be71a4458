"""What the MLflow UI shows: every summary score on each child, a short parent, datasets, sources.

Real MLflow against a SQLite file; everything is read back through the client, as the
UI reads it. The counts and names checked here are those of issue 18: a child carries
every test score ``summary.csv`` has for its run, named after the summary's columns;
the parent keeps at most 40 headline metrics and its per-run table as a table artifact.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from tracking_helpers import artifact_paths, module_store, run_config

from jointseg import tracking
from jointseg.cli import main as cli_main
from jointseg.tracking import views
from jointseg.tracking.results import PARENT_METRICS_MAX

LABELS = {"0": "background", "1": "anterior", "2": "posterior"}
SCORES = (  # the score columns `jointseg aggregate` writes into summary.csv, in its order
    "dice",
    "iou",
    "hd95",
    "assd",
    "sensitivity",
    "specificity",
    "precision",
    "hd95_penalised",
    "assd_penalised",
    "hd95_pct",
    "assd_pct",
)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    yield from module_store(tmp_path_factory)


def prepared_folder(root: Path) -> tuple[Path, str]:
    """A prepared data set's manifest and splits; returns the folder and the manifest's sha256."""
    root.mkdir(parents=True, exist_ok=True)
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps({"dataset": "demo_msd", "ndim": 3}))
    (root / "splits.json").write_text(
        json.dumps({"rule": "seeded", "train": ["a", "b", "c"], "val": ["d"], "test": ["e", "f"]})
    )
    return root, hashlib.sha256(manifest.read_bytes()).hexdigest()


def summary_rows(variants: list[str], datasets: tuple[str, ...] = ("demo_msd",)) -> pd.DataFrame:
    """summary.csv rows: per data set, variant, seed 0 and classes 1, 2; distinct values per cell."""
    rows = []
    for d_i, ds in enumerate(datasets):
        for v_i, variant in enumerate(variants):
            for k in (1, 2):
                row = {"dataset": ds, "variant": variant, "seed": 0, "class": k}
                row |= {"n_cases": 5, "n_nan_distance": k - 1, "n_params": 1000 + v_i}
                row |= {m: round(0.01 * (i + 1) + 0.1 * k + v_i + 10 * d_i, 4) for i, m in enumerate(SCORES)}
                rows.append(row)
    return pd.DataFrame(rows)


def test_child_carries_every_summary_score_named_after_its_columns(mlflow_store, tmp_path, monkeypatch):
    """`jointseg track metrics --summary`: test_<column>_<class> and test_<column>_mean for every
    score column of summary.csv (the penalised and %-of-diagonal distances included), with the
    summary's values, and nothing for the counts."""
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    prepared, _ = prepared_folder(tmp_path / "prepared")
    rc = run_config(mlflow_store, "ui_child", dataset="demo_msd") | {"prepared_dir": str(prepared), "labels": LABELS}
    tracker = tracking.RunTracker(rc, tmp_path)
    tracker.finish()
    run_dir = tmp_path / "demo_msd" / "joint" / "seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "run_config.json").write_text(json.dumps(rc))
    (run_dir / "train_done.json").write_text(json.dumps({"mlflow_run_id": tracker.run_id}))
    # metrics.csv names the run (its first columns); its own scores lack the summary's derived ones
    (run_dir / "metrics.csv").write_text(
        "dataset,variant,seed,case,class,dice,iou,hd95,assd,sensitivity,specificity,precision,diagonal,unit\n"
        "demo_msd,joint,0,001,1,0.5,0.3,2,1,1,1,1,90.5,mm\n"
    )
    summary = summary_rows(["none", "joint"])
    summary.to_csv(tmp_path / "summary.csv", index=False)
    args = ["track", "metrics", "--metrics", str(run_dir / "metrics.csv"), "--summary", str(tmp_path / "summary.csv")]
    assert cli_main(args) == 0

    metrics = tracking.client(mlflow_store).get_run(tracker.run_id).data.metrics
    mine = summary[summary["variant"] == "joint"].set_index("class")
    expected = {}
    for column in SCORES:
        expected[f"test_{column}_anterior"] = mine.loc[1, column]
        expected[f"test_{column}_posterior"] = mine.loc[2, column]
        expected[f"test_{column}_mean"] = (mine.loc[1, column] + mine.loc[2, column]) / 2
    assert {k: v for k, v in metrics.items() if k.startswith("test_")} == pytest.approx(expected)
    assert "test_hd95_penalised_mean" in metrics and "test_assd_pct_posterior" in metrics
    # its colour: the variant's place in the study (summary order none, joint), as in the figures
    tags = tracking.client(mlflow_store).get_run(tracker.run_id).data.tags
    assert tags["mlflow.runColor"] == views.TAB10[1]


def test_summary_for_another_run_is_refused(mlflow_store, tmp_path, capsys):
    """A summary without the run's rows is a one-line error (exit 2), not a silent no-op."""
    run_dir = tmp_path / "demo_msd" / "self" / "seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "train_done.json").write_text(json.dumps({"mlflow_run_id": "0" * 32}))
    (run_dir / "metrics.csv").write_text(
        "dataset,variant,seed,case,class,dice,iou,hd95,assd,sensitivity,specificity,precision,diagonal,unit\n"
        "demo_msd,self,0,001,1,0.5,0.3,2,1,1,1,1,90.5,mm\n"
    )
    summary_rows(["none", "joint"]).to_csv(tmp_path / "summary.csv", index=False)
    args = ["track", "metrics", "--metrics", str(run_dir / "metrics.csv"), "--summary", str(tmp_path / "summary.csv")]
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "summary.csv" in err[0] and "self" in err[0]


@pytest.mark.parametrize(("n_variants", "kept"), [(4, ("dice", "hd95", "iou", "assd")), (12, ("dice",))])
def test_parent_keeps_at_most_40_headline_metrics_and_the_table(mlflow_store, tmp_path, n_variants, kept):
    """2 data sets x 4 variants: all four headline means (32 metrics); x 12 variants: Dice only
    (24; with HD95 it would be 48). The per-run table is a table artifact MLflow shows."""
    study = f"ui_parent{n_variants}"
    config = {"study": study, "results_dir": str(tmp_path), "mlflow": {"tracking_uri": mlflow_store}}
    config["datasets"] = {"demo_isic": {"labels": {"1": "lesion"}}, "demo_msd": {"labels": LABELS}}
    parent = tracking.start_parent(config, tmp_path)
    summary = tmp_path / "summary"
    summary.mkdir()
    table = summary_rows([f"v{i}" for i in range(n_variants)], ("demo_isic", "demo_msd"))
    table.to_csv(summary / "summary.csv", index=False)
    prepared, sha = prepared_folder(tmp_path / "prepared")  # provenance.json names each prepared set
    provenance = {"data": {"demo_msd": {"manifest_sha256": sha, "prepared_dir": str(prepared)}}}
    (summary / "provenance.json").write_text(json.dumps(provenance))
    tracking.finish_parent("FINISHED", config, summary, run_id=parent)

    c = tracking.client(mlflow_store)
    run = c.get_run(parent)
    assert len(run.data.metrics) == 2 * n_variants * len(kept) <= PARENT_METRICS_MAX
    assert {k.rsplit("/", 1)[1] for k in run.data.metrics} == {f"test_{m}_mean" for m in kept}
    assert run.data.metrics["demo_isic/v1/test_dice_mean"] == pytest.approx(
        table.query("dataset == 'demo_isic' and variant == 'v1'")["dice"].mean()
    )
    # the whole table, as MLflow's artifact view shows tables (logged with log_table)
    assert "summary_table.json" in artifact_paths(mlflow_store, parent)
    logged = json.loads(run.data.tags["mlflow.loggedArtifacts"])
    assert {"path": "summary_table.json", "type": "table"} in logged
    shown = pd.read_json(c.download_artifacts(parent, "summary_table.json", str(tmp_path)), orient="split")
    assert len(shown) == len(table) and list(shown.columns[:4]) == ["dataset", "variant", "seed", "class"]
    # the parent's Dataset column: the study's prepared data sets
    assert [(d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs] == [("demo_msd", sha[:32])]


def test_runs_say_what_they_trained_on_and_where_they_came_from(mlflow_store, tmp_path, monkeypatch):
    """Dataset column: the prepared data set (name, digest = its data hash, source = its folder);
    Source column: the command; the experiment opens on its runs (model training, not GenAI)."""
    prepared, sha = prepared_folder(tmp_path / "prepared")
    config = {"study": "ui_inputs", "results_dir": str(tmp_path), "mlflow": {"tracking_uri": mlflow_store}}
    parent = tracking.start_parent(config, tmp_path)
    monkeypatch.setenv(tracking.PARENT_ENV, parent)
    rc = run_config(mlflow_store, "ui_inputs", dataset="demo_msd") | {"prepared_dir": str(prepared)}
    tracker = tracking.RunTracker(rc, tmp_path)
    tracker.finish()

    c = tracking.client(mlflow_store)
    child = c.get_run(tracker.run_id)
    (entry,) = child.inputs.dataset_inputs
    assert entry.dataset.name == "demo_msd"
    assert entry.dataset.digest == sha[:32] and child.data.tags["data_sha256"] == sha
    assert json.loads(entry.dataset.source) == {"uri": prepared.resolve().as_uri()}
    assert json.loads(entry.dataset.profile)["cases"] == {"train": 3, "val": 1, "test": 2}
    assert {t.key: t.value for t in entry.tags} == {"mlflow.data.context": "training"}
    assert child.data.tags["mlflow.source.name"] == "jointseg train"
    assert c.get_run(parent).data.tags["mlflow.source.name"].startswith("snakemake")
    experiment = c.get_experiment(child.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # the shared view the README links to: training runs only, grouped by data set, one chart per run
    view = json.loads(experiment.tags[f"mlflow.sharedViewState.{views.VIEW_KEY}"])
    assert view["searchFilter"] == "tags.`jointseg.kind` = 'training'"
    assert view["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "dataset"}]
    link = views.training_view_link(experiment.experiment_id)
    assert f"viewStateShareKey={views.VIEW_KEY}" in link and "workflowType=machine_learning" in link
