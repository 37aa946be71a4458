"""The claims: the verdict rule on constructed summaries (a clear win, a clear loss, noise, tests
that cannot run), the balance against a hand computation, the attention summary's pooling and
tests, and ``jointseg claims`` end to end into the report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from reporting_helpers import cli_args, fake_study, metrics_frame

from jointseg.cli import main as cli_main
from jointseg.evaluation.attention_stats import COLUMNS as QUERY_COLUMNS
from jointseg.evaluation.evaluate import write_metrics
from jointseg.reporting import attention_summary as att
from jointseg.reporting import claims as cl
from jointseg.reporting.balance import balance_table
from jointseg.reporting.claims_report import build_claims

RNG = np.random.default_rng(7)


def pooled(values: dict[str, dict[str, np.ndarray]], dataset: str = "d1", klass: int = 1) -> pd.DataFrame:
    """Per-case rows ``{variant: {metric: values per case}}`` as :func:`summary.pooled_cases` gives them."""
    rows = []
    for variant, metrics in values.items():
        n = len(next(iter(metrics.values())))
        for i in range(n):
            rows.append(
                {"dataset": dataset, "variant": variant, "class": klass, "case": f"c{i:02d}"}
                | {m: float(v[i]) for m, v in metrics.items()}
            )
    return pd.DataFrame(rows)


def sota_pair(dice_gap: float, hd_gap: float, n: int = 12, noise: float = 0.005) -> pd.DataFrame:
    base = RNG.uniform(0.6, 0.9, n)
    hd = RNG.uniform(3, 9, n)
    return pooled(
        {
            "joint": {"dice": base + dice_gap + RNG.normal(0, noise, n), "hd95_penalised": hd - hd_gap},
            "unet_pp": {"dice": base, "hd95_penalised": hd + RNG.normal(0, noise, n)},
        }
    )


def sota_verdict(frame: pd.DataFrame) -> dict:
    tests = cl.sota_tests(frame, n_boot=200)
    return cl.claim_row("sota_unet_pp", tests[tests["claim"] == "sota_unet_pp"])


def test_sota_clear_win_is_supported_with_its_weakest_test():
    row = sota_verdict(sota_pair(dice_gap=0.05, hd_gap=2.0))
    assert row["verdict"] == "supported"
    assert row["n_tests"] == 2 and row["n_favour"] == 2
    assert row["p_holm"] < 0.05 and row["ci_low"] <= row["effect"] <= row["ci_high"]


def test_sota_clear_loss_is_not_supported():
    row = sota_verdict(sota_pair(dice_gap=-0.05, hd_gap=-2.0))
    assert row["verdict"] == "not supported"
    assert row["n_against"] == 2 and row["n_favour"] == 0 and row["p_holm"] < 0.05


def test_sota_noise_is_inconclusive():
    n = 12
    base, hd = RNG.uniform(0.6, 0.9, n), RNG.uniform(3, 9, n)
    signs = np.array([1, -1] * (n // 2))  # half better, half worse by the same amounts: no direction
    frame = pooled(
        {
            "joint": {"dice": base + 0.03 * signs, "hd95_penalised": hd - 1.0 * signs},
            "unet_pp": {"dice": base, "hd95_penalised": hd},
        }
    )
    row = sota_verdict(frame)
    assert row["verdict"] == "inconclusive"
    assert row["n_favour"] == 0 and row["n_against"] == 0
    assert row["p_holm"] > 0.05


def test_too_few_paired_cases_are_inconclusive_and_say_why():
    row = sota_verdict(sota_pair(dice_gap=0.05, hd_gap=2.0, n=5))
    assert row["verdict"] == "inconclusive"
    assert "too few paired cases (n=5 < 6)" in row["reason"]


def test_cannot_run_claims_are_inconclusive_never_errors():
    frame = pooled({"joint": {"dice": np.full(8, 0.8), "hd95_penalised": np.full(8, 3.0)}})
    claims, tests = build_claims(
        frame,
        att.attention_table(att.pooled_queries(pd.DataFrame()), [], [], 200),
        balance_table(frame),
        200,
        {"joint"},
    )
    got = claims.set_index("claim")
    assert list(got.index) == list(cl.claims())
    assert set(got["verdict"]) == {"inconclusive"}
    assert got.loc["sota_unet_pp", "reason"] == "unet_pp not in the study"
    assert got.loc["locality", "reason"] == "no attention statistics of pointwise and self"
    assert got.loc["balance", "reason"] == "variant(s) pointwise, self not in the study"
    assert tests.empty
    missing_joint = cl.claim_row(
        "sota_cbam", cl.sota_tests(frame.assign(variant="cbam"), 200), "joint not in the study"
    )
    assert missing_joint["verdict"] == "inconclusive" and missing_joint["reason"] == "joint not in the study"


def test_favours_reads_the_holm_p_or_the_ci_and_the_direction():
    assert cl.favours(0.1, +1, p_holm=0.01) == "claim"
    assert cl.favours(0.1, -1, p_holm=0.01) == "alternative"
    assert cl.favours(0.1, +1, p_holm=0.2) == "neither"
    assert cl.favours(-0.3, -1, ci=(-0.4, -0.1)) == "claim"
    assert cl.favours(-0.3, -1, ci=(-0.4, 0.0)) == "neither"  # a CI touching 0 does not exclude it
    assert cl.favours(0.3, -1, ci=(0.1, 0.4)) == "alternative"


# ------------------------------------------------------------------------------------- balance
def balance_values(n: int = 20, noise: float = 0.0) -> dict:
    """Dice: none .70, pointwise .80, self .75, joint .78; HD95 (lower better): 10, 20, 12, 11."""
    eps = (lambda: RNG.normal(0, noise, n)) if noise else (lambda: np.zeros(n))
    means = {"none": (0.70, 10.0), "pointwise": (0.80, 20.0), "self": (0.75, 12.0), "joint": (0.78, 11.0)}
    return {v: {"dice": d + eps(), "hd95_penalised": h + eps()} for v, (d, h) in means.items()}


def test_balance_by_hand_with_a_lower_is_better_metric_and_a_degenerate_family():
    frame = pd.concat(
        [
            pooled(balance_values(), klass=1),
            # class 2: every variant identical -> two degenerate families, deficit 0 for all
            pooled(
                {v: {"dice": np.full(20, 0.5), "hd95_penalised": np.full(20, 4.0)} for v in balance_values()}, klass=2
            ),
        ]
    )
    got = balance_table(frame, n_boot=200).set_index("variant")
    # dice deficits (best .80, worst .70): none 1, pointwise 0, self .5, joint .2
    # hd95 deficits (best 10, worst 20):    none 0, pointwise 1, self .2, joint .1
    assert got["balance"].to_dict() == pytest.approx({"none": 1.0, "pointwise": 1.0, "self": 0.5, "joint": 0.2})
    assert (got["n_families"] == 4).all() and (got["n_degenerate"] == 2).all()
    assert got.loc["self", "worst_family"] == "d1 / class 1 / dice"
    assert got.loc["pointwise", "worst_family"] == "d1 / class 1 / hd95_penalised"
    assert got.loc["pointwise", "joint_minus"] == pytest.approx(-0.8)
    assert got.loc["self", "diff_ci_low"] == pytest.approx(-0.3) and got.loc["self", "diff_ci_high"] == pytest.approx(
        -0.3
    )


def balance_verdict(values: dict) -> dict:
    tests, why = cl.balance_tests(balance_table(pooled(values), n_boot=300), set(values))
    return cl.claim_row("balance", tests, why)


def test_balance_clear_win_loss_and_noise():
    assert balance_verdict(balance_values(noise=0.002))["verdict"] == "supported"
    worse = balance_values(noise=0.002)
    worse["joint"] = {"dice": np.full(20, 0.60), "hd95_penalised": np.full(20, 30.0)}  # worst everywhere
    assert balance_verdict(worse)["verdict"] == "not supported"
    noise = {v: {"dice": RNG.uniform(0.5, 0.9, 20), "hd95_penalised": RNG.uniform(2, 20, 20)} for v in balance_values()}
    row = balance_verdict(noise)
    assert row["verdict"] == "inconclusive" and row["ci_low"] < 0 < row["ci_high"]


# ----------------------------------------------------------------------------------- locality
def query_rows(variant: str, branches: list[str], distance, area, mass, seed: int = 0, n: int = 30) -> list[dict]:
    rows = []
    for q in range(n):
        kind = "foreground" if q % 2 == 0 else "background"
        for b in branches:
            rows.append(
                dict.fromkeys(QUERY_COLUMNS, 0)
                | {
                    "dataset": "d1",
                    "variant": variant,
                    "seed": seed,
                    "case": f"c{q // 6}",
                    "slice": 0,
                    "query": q % 6,
                    "kind": kind,
                    "branch": b,
                    "unit": "px",
                    "uniform_distance": 30.0,
                    "distance": distance(q),
                    "area": area(q),
                    "object_fraction": 0.1 if kind == "foreground" else np.nan,
                    "object_mass": mass(q) if kind == "foreground" else np.nan,
                }
            )
    return rows


JITTER = RNG.normal(0, 0.5, 128)  # per-query noise shared by the constructed maps


def locality(pw_distance: float) -> tuple[pd.DataFrame, dict]:
    """Self's maps and two seeds of pointwise whose distance is ``pw_distance`` (+- 1 per seed) away (10 cases)."""
    rows = query_rows(
        "self", ["content"], lambda q: 30 + JITTER[q], lambda q: 0.6 + JITTER[q] / 100, lambda q: 0.1, n=60
    )
    sign = np.sign(pw_distance)
    for seed, shift in ((0, -1.0), (1, 1.0)):
        rows += query_rows(
            "pointwise",
            ["collect", "distribute"],
            lambda q, s=shift: 30 + pw_distance + s + JITTER[q] + JITTER[q + 30],
            lambda q: 0.6 + sign * 0.2 + JITTER[q + 1] / 100,
            lambda q: 0.1 - sign * 0.2 + JITTER[q + 2] / 100,
            seed=seed,
            n=60,
        )
    table = att.attention_table(att.pooled_queries(pd.DataFrame(rows)), ["d1"], ["pointwise", "self"], 200)
    tests, why = cl.locality_tests(table)
    return table, cl.claim_row("locality", tests, why)


def test_attention_table_pools_seeds_pairs_cases_and_holm_adjusts_the_claims_family():
    table, _ = locality(pw_distance=-10.0)
    pw = table[table["variant"] == "pointwise"]
    assert len(pw) == 2 * 2 * 2 + 2  # 2 branches x 2 kinds x (distance, area) + own-object mass (foreground)
    fg = pw[(pw["measure"] == "distance") & (pw["kind"] == "foreground") & (pw["branch"] == "collect")].iloc[0]
    # 30 foreground queries in 10 cases: the statistics are over cases, the queries are counted
    assert fg["n_queries"] == 30 and fg["n_pairs"] == 10 and fg["n_cases"] == 10
    # per query: (30 - 10 +- 1 + J[q] + J[q+30]) averaged over the seeds, minus (30 + J[q]);
    # each case has three foreground queries, so the mean of the case means is the queries' mean
    assert fg["diff_mean"] == pytest.approx(-10.0 + JITTER[30:90:2].mean(), rel=1e-9)
    # the std is over the 10 case means of pointwise's values (30 - 10 + J[q] + J[q+30])
    case_means = pd.Series(JITTER[0:60:2] + JITTER[30:90:2]).groupby(np.arange(30) // 3).mean()
    assert fg["std"] == pytest.approx(case_means.std(), rel=1e-9)
    assert fg["uniform_mean"] == 30.0 and table[table["measure"] == "area"]["uniform_mean"].eq(1.0).all()
    assert table.loc[table["variant"] == "self", "p_value"].isna().all()
    # two Holm families: distance and own-object mass (the claim's, 6 tests), and the area (4 tests)
    for family, size in ((pw["measure"] != "area", 6), (pw["measure"] == "area", 4)):
        p, adjusted = pw.loc[family, "p_value"].to_numpy(), pw.loc[family, "p_holm"].to_numpy()
        assert len(p) == size and np.all(adjusted >= p) and np.all(adjusted <= np.minimum(1.0, size * p) + 1e-12)
    assert set(cl.locality_tests(table)[0]["metric"]) == {"distance", "object_mass"}  # the area decides nothing


def test_locality_clear_win_loss_and_a_missing_variant():
    assert locality(pw_distance=-10.0)[1]["verdict"] == "supported"
    assert locality(pw_distance=+10.0)[1]["verdict"] == "not supported"
    table, _ = locality(pw_distance=-10.0)
    tests, why = cl.locality_tests(table[table["variant"] != "self"].assign(versus=np.nan))
    assert cl.claim_row("locality", tests, why)["reason"] == "no attention statistics of self"


# ------------------------------------------------------------------------------------ end to end
def test_claims_cli_writes_every_table_and_aggregate_appends_them_to_the_report(tmp_path):
    study = fake_study(tmp_path)
    base = np.linspace(0.5, 0.9, 6)
    extra = tmp_path / "unet_pp.csv"
    write_metrics(metrics_frame("toy2d", "unet_pp", 0, base - 0.1, np.full(6, 9.0)), extra)
    queries = tmp_path / "queries"
    queries.mkdir()
    for variant, branches in (("pointwise", ["collect", "distribute"]), ("self", ["content"])):
        frame = pd.DataFrame(query_rows(variant, branches, lambda q: 20.0 + q, lambda q: 0.5, lambda q: 0.2))
        frame.assign(dataset="toy2d").to_csv(queries / f"{variant}.csv", index=False)
    out = tmp_path / "summary"
    args = ["claims", "--config", str(study["config"]), "--out", str(out), "--metrics"]
    args += [*map(str, study["metrics"]), str(extra), "--attention-stats", *map(str, sorted(queries.iterdir()))]
    assert cli_main(args) == 0
    claims = pd.read_csv(out / "claims.csv").set_index("claim")
    # six cases: Wilcoxon's smallest p is 2/64, and Holm over the two metrics doubles it
    assert claims.loc["sota_unet_pp", "verdict"] == "inconclusive"
    assert claims.loc["sota_attention_unet", "reason"] == "attention_unet not in the study"
    assert claims.loc["locality", "verdict"] == "inconclusive"  # identical maps: every difference is 0
    assert claims.loc["balance", "verdict"] == "inconclusive"  # no `none`: balance over pointwise, self, joint
    for name in ("claims_tests.csv", "balance.csv", "attention_stats.csv", "attention_stats.png", "claims.html"):
        assert (out / name).is_file()
    assert cli_main(cli_args(study, out, "--no-figures", "--sections", str(out / "claims.md"))) == 0
    report = (out / "report.md").read_text()
    assert "\n## Claims\n" in report and "\n### Attention statistics\n" in report and "sota_unet_pp" in report
    assert math.isnan(pd.read_csv(out / "attention_stats.csv")["p_value"].iloc[-1])
