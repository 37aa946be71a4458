"""Statistics with known answers: mean ± std, bootstrap CI, paired Wilcoxon, Holm's adjustment."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from jointseg.reporting.stats import bootstrap_ci, holm, mean_std, paired_wilcoxon


# --------------------------------------------------------------------------- mean, std, bootstrap
def test_constant_data_ci_collapses_and_std_is_zero():
    assert bootstrap_ci([0.7] * 25, n_resamples=500) == pytest.approx((0.7, 0.7))
    assert bootstrap_ci([0.3]) == (0.3, 0.3)  # one case: every resample is that case
    mean, std, n = mean_std([0.7] * 25 + [float("nan")])
    assert (mean, std, n) == (pytest.approx(0.7), pytest.approx(0.0, abs=1e-12), 25)
    assert all(math.isnan(v) for v in bootstrap_ci([float("nan")]))
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.5)


def test_bootstrap_ci_of_normal_sample_has_expected_coverage_and_width():
    rng = np.random.default_rng(123)
    x = rng.normal(5.0, 2.0, size=4000)
    lo, hi = bootstrap_ci(x, n_resamples=2000, seed=1)
    assert lo < 5.0 < hi
    expected = 2 * 1.959964 * x.std(ddof=1) / math.sqrt(x.size)  # normal-theory width
    assert hi - lo == pytest.approx(expected, rel=0.1)
    assert bootstrap_ci(x, n_resamples=2000, seed=1) == (lo, hi)  # seeded: reproducible


def test_bootstrap_ci_is_the_percentile_bootstrap_of_the_mean():
    """Same intervals as resampling cases by hand with ``default_rng(0)`` and taking percentiles."""
    x = np.array([0.80, 0.70, 0.63, 0.90, 0.50, 0.80, float("nan")])
    finite = x[~np.isnan(x)]
    rng = np.random.default_rng(0)
    means = finite[rng.integers(0, finite.size, size=(2000, finite.size))].mean(axis=1)
    by_hand = np.percentile(means, [2.5, 97.5])
    assert bootstrap_ci(x, n_resamples=2000, seed=0) == pytest.approx(tuple(by_hand), rel=1e-9)


# --------------------------------------------------------------------------- Wilcoxon
def _exact_wilcoxon(diffs: np.ndarray) -> tuple[float, float]:
    """Statistic min(W+, W-) from ranks of |d| and the exact two-sided p by enumerating signs."""
    d = diffs[diffs != 0]
    ranks = pd.Series(np.abs(d)).rank().to_numpy()
    w_plus = ranks[d > 0].sum()
    stat = min(w_plus, ranks.sum() - w_plus)
    sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=len(d))]
    p = min(1.0, 2 * np.mean([s <= stat for s in sums]))
    return stat, p


def test_wilcoxon_matches_ranks_computed_by_hand():
    a = np.array([0.81, 0.72, 0.60, 0.94, 0.55, 0.86])
    b = a - np.array([0.01, 0.02, -0.03, 0.04, 0.05, 0.06])
    res = paired_wilcoxon(a, b)
    # ranks 1..6, negative difference has rank 3: W- = 3, W+ = 18; P(W <= 3) = 5/64
    assert res["statistic"] == pytest.approx(3.0)
    assert res["p"] == pytest.approx(10 / 64)
    assert (res["statistic"], res["p"]) == pytest.approx(_exact_wilcoxon(a - b))
    assert res["n"] == 6


def test_wilcoxon_drops_nan_pairs_and_handles_zero_differences():
    a = [1.0, 2.0, float("nan"), 4.0, 5.0]
    b = [0.5, 1.0, 3.0, float("nan"), 4.0]
    assert paired_wilcoxon(a, b)["n"] == 3
    same = paired_wilcoxon([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same == {"n": 3, "statistic": 0.0, "p": 1.0}
    assert math.isnan(paired_wilcoxon([float("nan")], [1.0])["p"])
    # zero differences are dropped before the test: the exact p of the remaining pairs
    zeros = paired_wilcoxon([1, 1, 1, 1, 0.5, 0.7, 0.9], [1, 1, 1, 1, 0.4, 0.5, 0.6])
    assert zeros["n"] == 7 and zeros["p"] == pytest.approx(_exact_wilcoxon(np.array([0.1, 0.2, 0.3]))[1])
    assert zeros["p"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="length"):
        paired_wilcoxon([1.0, 2.0], [1.0])


# --------------------------------------------------------------------------- Holm
def test_holm_on_three_p_values_by_hand():
    # sorted: 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04, raised to the earlier 0.06)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # capped at 1; the step-down maximum keeps the order of the raw p-values
    assert holm([0.6, 0.7, 0.2]) == pytest.approx([1.0, 1.0, 0.6])


def test_holm_skips_undefined_p_values():
    # the reference variant has no test: m = 2 for the other two
    out = holm([float("nan"), 0.02, 0.5])
    assert math.isnan(out[0]) and out[1:] == pytest.approx([0.04, 0.5])
    assert np.isnan(holm([float("nan")])).all() and holm([]).size == 0
    assert holm([0.2]) == pytest.approx([0.2])  # one test: unchanged
