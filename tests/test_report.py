"""``jointseg aggregate`` end to end on a fake study: report.md, explicit inputs, errors, stable bytes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from reporting_helpers import cli_args, fake_study, metrics_frame, write_json

from jointseg.cli import main as cli_main
from jointseg.config import load_config
from jointseg.evaluation.evaluate import write_metrics
from jointseg.io_utils import sha256_file


def test_report_states_policy_recipe_provenance_and_what_was_not_drawn(tmp_path):
    study = fake_study(tmp_path)
    out = tmp_path / "summary"
    assert cli_main(cli_args(study, out)) == 0
    report = (out / "report.md").read_text()
    assert "[summary.md](summary.md)" in report and "code commit" in report
    assert "penalised" in report and "Holm" in report
    assert "## Training recipe" in report and "`final.pt`" in report
    manifest = study["manifests"][0]
    assert f"sha256 of `{manifest}` `{sha256_file(manifest)}`" in report
    assert "![toy2d_boxplots](figures/toy2d_boxplots.png)" in report
    assert "![toy2d_learning_curves](figures/toy2d_learning_curves.png)" in report
    not_produced = report.split("## Not produced", 1)[1].split("##", 1)[0]
    assert "no checkpoints given" in not_produced


def test_history_files_pair_with_run_configs_by_position(tmp_path, capsys):
    study = fake_study(tmp_path)
    out = tmp_path / "summary"
    study["histories"] = study["histories"][:-1]
    assert cli_main(cli_args(study, out, "--no-figures")) == 2
    err = capsys.readouterr().err
    assert "5 history files for 6 run configs" in err and not (out / "summary.csv").exists()


def test_every_run_needs_its_run_config_and_data_set_manifest(tmp_path, capsys):
    study = fake_study(tmp_path)
    out = tmp_path / "summary"
    no_config = {**study, "run_configs": study["run_configs"][1:], "histories": []}
    assert cli_main(cli_args(no_config, out, "--no-figures")) == 2
    assert "no run config given for 1 run(s)" in capsys.readouterr().err
    other = write_json(tmp_path / "other.json", {"dataset": "elsewhere", "in_channels": 1, "num_classes": 2})
    assert cli_main(cli_args({**study, "manifests": [other]}, out, "--no-figures")) == 2
    assert "no manifest given for data set(s) ['toy2d']" in capsys.readouterr().err


def test_a_run_given_twice_is_refused(tmp_path, capsys):
    study = fake_study(tmp_path)
    copy = tmp_path / "copy.csv"
    copy.write_bytes(Path(study["metrics"][0]).read_bytes())
    study["metrics"].append(copy)
    assert cli_main(cli_args(study, tmp_path / "summary", "--no-figures")) == 2
    assert "('toy2d', 'joint', 0) is also in" in capsys.readouterr().err


def test_identity_comes_from_the_data_not_the_path(tmp_path):
    """Metrics files with arbitrary names: the dataset/variant/seed columns decide."""
    study = fake_study(tmp_path)
    renamed = []
    for i, path in enumerate(study["metrics"]):
        target = tmp_path / "flat" / f"m{i}.csv"
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(Path(path).read_bytes())
        renamed.append(target)
    assert cli_main(cli_args({**study, "metrics": renamed}, tmp_path / "summary", "--no-figures")) == 0
    summary = pd.read_csv(tmp_path / "summary" / "summary.csv")
    assert sorted(zip(summary["variant"], summary["seed"])) == sorted(
        (v, s) for v in ("joint", "pointwise", "self") for s in (0, 1)
    )


def test_old_metrics_without_run_columns_are_refused(tmp_path, capsys):
    study = fake_study(tmp_path)
    old = metrics_frame("toy2d", "joint", 0, [0.5] * 6, [1.0] * 6).drop(columns=["dataset", "variant", "seed"])
    write_metrics(old, study["metrics"][0])
    assert cli_main(cli_args(study, tmp_path / "summary", "--no-figures")) == 2
    assert "missing column(s) ['dataset', 'variant', 'seed']" in capsys.readouterr().err


def test_output_is_byte_identical_across_runs(tmp_path):
    study = fake_study(tmp_path)
    for name in ("a", "b"):
        assert cli_main(cli_args(study, tmp_path / name)) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert Path("summary.csv") in files and Path("figures/toy2d_learning_curves.png") in files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


@pytest.mark.slow
def test_summary_is_logged_to_the_mlflow_parent_run(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from jointseg import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("JOINTSEG_MLFLOW", raising=False)
    study = fake_study(tmp_path)
    run_id = tracking.start_parent(load_config(study["config"]), tmp_path / "results")
    monkeypatch.setenv(tracking.PARENT_ENV, run_id)  # how the workflow hands the parent to its jobs
    args = [a for a in cli_args(study, tmp_path / "summary", "--no-figures") if a != "--no-mlflow"]
    assert cli_main(args) == 0
    logged = {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(run_id, "summary")}
    assert {"summary/summary.csv", "summary/stats.csv", "summary/report.md"} <= logged
