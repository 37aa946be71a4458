"""``jointseg headline-metrics``: means per data set x variant from the metrics' own run columns."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reporting_helpers import metrics_frame

from jointseg.cli import main as cli_main
from jointseg.evaluation.evaluate import write_metrics


def test_headline_means_over_cases_then_seeds(tmp_path):
    paths = []
    # seed 0 and seed 1 of joint; one NaN distance in seed 1 is excluded from its run mean
    for i, (seed, dice, hd) in enumerate(((0, [0.8, 0.6], [2.0, 4.0]), (1, [0.9, 0.7], [6.0, np.nan]))):
        paths.append(tmp_path / f"run{i}.csv")  # names say nothing: the columns do
        write_metrics(metrics_frame("toy", "joint", seed, dice, hd, cases=["a", "b"], diagonal=[10.0, 10.0]), paths[-1])
    paths.append(tmp_path / "other.csv")
    write_metrics(
        metrics_frame("toy", "self", 0, [0.5, 0.5], [1.0, 1.0], cases=["a", "b"], diagonal=[10.0, 10.0]), paths[-1]
    )
    out = tmp_path / "metrics.json"
    assert cli_main(["headline-metrics", "--out", str(out), "--metrics", *map(str, paths)]) == 0
    got = json.loads(out.read_text())
    joint = got["toy"]["joint"]
    assert joint["runs"] == 2
    assert joint["dice"] == pytest.approx(np.mean([np.mean([0.8, 0.6]), np.mean([0.9, 0.7])]))
    assert joint["hd95"] == pytest.approx(np.mean([3.0, 6.0]))  # (2+4)/2 and 6 (NaN excluded)
    assert joint["assd"] == pytest.approx(np.mean([1.5, 3.0]))
    assert got["toy"]["self"] == {
        "dice": 0.5,
        "iou": pytest.approx(0.5 / 1.5, abs=1e-6),
        "hd95": 1.0,
        "assd": 0.5,
        "runs": 1,
    }


def test_headline_refuses_metrics_without_run_columns(tmp_path, capsys):
    path = tmp_path / "metrics.csv"
    frame = metrics_frame("toy", "joint", 0, [0.8], [2.0], cases=["a"], diagonal=[10.0])
    write_metrics(frame.drop(columns=["variant"]), path)
    rc = cli_main(["headline-metrics", "--out", str(tmp_path / "m.json"), "--metrics", str(path)])
    assert rc == 2 and "missing column(s) ['variant']" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()
