"""The statistics policy on a fake study: seed summaries, pooled statistics, penalised and % distances, Holm."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from reporting_helpers import DIAGONALS, DIFF, HD, JOINT, fake_study, metrics_frame

from jointseg.config import load_config
from jointseg.evaluation.evaluate import evaluate_folders, with_run
from jointseg.reporting import collect
from jointseg.reporting.aggregate import aggregate
from jointseg.reporting.summary import add_derived, compute_stats, pooled_cases


@pytest.fixture()
def summarised(tmp_path):
    study = fake_study(tmp_path)
    inputs = collect.collect(study["metrics"], study["run_configs"], study["manifests"], study["histories"])
    out = tmp_path / "summary"
    aggregate(load_config(study["config"]), inputs, out, figures=False, config_path=str(study["config"]))
    return pd.read_csv(out / "summary.csv"), pd.read_csv(out / "stats.csv")


def _row(stats: pd.DataFrame, metric: str, variant: str) -> pd.Series:
    return stats[(stats["metric"] == metric) & (stats["variant"] == variant)].iloc[0]


def test_seed_summary_means_exclude_undefined_distances(summarised):
    summary, _ = summarised
    assert list(summary.columns[:7]) == ["dataset", "variant", "seed", "class", "n_cases", "n_nan_distance", "n_params"]
    assert list(summary["variant"].unique()) == ["pointwise", "self", "joint"]  # config order
    j0 = summary[(summary["variant"] == "joint") & (summary["seed"] == 0)].iloc[0]
    assert j0["dice"] == pytest.approx(JOINT.mean() - 0.1, abs=1e-6)
    assert j0["n_cases"] == 6 and j0["n_nan_distance"] == 0
    p0 = summary[(summary["variant"] == "pointwise") & (summary["seed"] == 0)].iloc[0]
    assert p0["n_nan_distance"] == 2
    assert p0["hd95"] == pytest.approx(np.mean([5.0, 6.0, 7.0, 8.0]), abs=1e-5)  # NaN excluded
    # penalised: the two one-empty cases count as their image diagonals (100 and 150 px)
    assert p0["hd95_penalised"] == pytest.approx(np.mean([100.0, 150.0, 5.0, 6.0, 7.0, 8.0]), rel=1e-5)
    assert p0["assd_penalised"] == pytest.approx(np.mean([100.0, 150.0, 2.5, 3.0, 3.5, 4.0]), rel=1e-5)
    # % of each case's diagonal, over the four defined cases
    assert p0["hd95_pct"] == pytest.approx(np.mean(100 * (HD[2:] + 1) / DIAGONALS[2:]), rel=1e-5)


def test_pooled_statistics_and_holm_adjusted_p(summarised):
    _, stats = summarised
    row = _row(stats, "dice", "pointwise")
    assert row["mean"] == pytest.approx((JOINT - DIFF).mean(), abs=1e-6)
    assert row["std"] == pytest.approx((JOINT - DIFF).std(ddof=1), abs=1e-5)
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    assert row["p_value"] == pytest.approx(10 / 64, abs=1e-5) and row["n_pairs"] == 6
    assert row["wilcoxon_statistic"] == pytest.approx(3.0)
    same = _row(stats, "dice", "self")
    assert same["p_value"] == 1.0  # identical per-case values
    # family {pointwise, self} against joint: 10/64 * 2 = 0.3125; 1.0 stays 1.0
    assert row["p_holm"] == pytest.approx(0.3125, abs=1e-5) and same["p_holm"] == 1.0
    ref = _row(stats, "dice", "joint")
    assert math.isnan(ref["p_value"]) and math.isnan(ref["p_holm"])
    hd = _row(stats, "hd95", "pointwise")
    assert hd["n"] == 5 and hd["n_nan"] == 1 and hd["n_nan_case_seed"] == 3 and hd["n_pairs"] == 5
    assert hd["mean"] == pytest.approx(np.mean([4.0, 5.0, 6.0, 7.0, 8.0]), abs=1e-5)


def test_penalised_mean_pools_each_case_over_seeds_with_the_diagonal(summarised):
    _, stats = summarised
    pen = _row(stats, "hd95_penalised", "pointwise")
    # c0: diagonal in both seeds; c1: diagonal (seed 0) and 4 (seed 1); c2..c5: 5, 6, 7, 8
    per_case = [100.0, (150.0 + 4.0) / 2, 5.0, 6.0, 7.0, 8.0]
    assert pen["n"] == 6 and pen["n_nan"] == 0 and pen["n_nan_case_seed"] == 3
    assert pen["mean"] == pytest.approx(np.mean(per_case), rel=1e-5)
    assert pen["std"] == pytest.approx(np.std(per_case, ddof=1), rel=1e-5)
    # the penalised pairs include the one-empty cases, so all six pairs are tested
    assert pen["n_pairs"] == 6


def test_percent_of_diagonal_rows_only_for_pixel_data_sets(tmp_path):
    px = metrics_frame("photos", "joint", 0, [0.8, 0.9], [10.0, float("nan")], cases=["a", "b"], diagonal=[200.0, 50.0])
    mm = metrics_frame("mri", "joint", 0, [0.8, 0.9], [2.0, 3.0], cases=["a", "b"], diagonal=[90.0, 90.0], unit="mm")
    df = add_derived(pd.concat([px, mm], ignore_index=True))
    assert df["hd95_pct"].iloc[0] == pytest.approx(5.0)  # 100 * 10 / 200
    assert math.isnan(df["hd95_pct"].iloc[1])  # undefined distance stays undefined
    assert df["hd95_penalised"].iloc[1] == 50.0
    assert df.loc[df["dataset"] == "mri", "hd95_pct"].isna().all()
    stats = compute_stats(
        pooled_cases(df), ["photos", "mri"], ["joint"], "joint", {"photos": "px", "mri": "mm"}, n_boot=100
    )
    assert {"hd95_pct", "assd_pct"} <= set(stats.loc[stats["dataset"] == "photos", "metric"])
    assert not {"hd95_pct", "assd_pct"} & set(stats.loc[stats["dataset"] == "mri", "metric"])
    assert {"hd95_penalised", "assd_penalised"} <= set(stats.loc[stats["dataset"] == "mri", "metric"])


def test_percent_of_diagonal_on_a_200_by_100_image(tmp_path):
    """A 200 x 100 px image: diagonal 100*sqrt(5); masks 10*sqrt(5) px apart -> exactly 10 %."""
    ref = np.zeros((100, 200), np.uint8)
    pred = np.zeros((100, 200), np.uint8)
    ref[30, 40] = 1
    pred[50, 50] = 1  # 20 rows and 10 columns away
    for folder, labels in (("ref", ref), ("pred", pred)):
        (tmp_path / folder).mkdir()
        Image.fromarray(labels).save(tmp_path / folder / "x.png")
    df = with_run(evaluate_folders(tmp_path / "pred", tmp_path / "ref", progress=False), "photos", "joint", 0)
    assert df["diagonal"].iloc[0] == pytest.approx(100 * math.sqrt(5))
    assert df["hd95"].iloc[0] == pytest.approx(10 * math.sqrt(5))
    derived = add_derived(df)
    assert derived["hd95_pct"].iloc[0] == pytest.approx(10.0)
    assert derived["assd_pct"].iloc[0] == pytest.approx(10.0)
