"""Summary statistics: mean ± std, bootstrap confidence intervals, paired Wilcoxon tests.

All functions drop NaN values first (the metric policy's undefined distances
are counted elsewhere, never averaged in) and are deterministic given ``seed``.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

NAN = float("nan")


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    return arr[~np.isnan(arr)]


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float, int]:
    """``(mean, sample std (ddof=1), n)`` of the non-NaN values; std is NaN for n < 2."""
    arr = _finite(values)
    n = int(arr.size)
    if n == 0:
        return NAN, NAN, 0
    return float(arr.mean()), float(arr.std(ddof=1)) if n > 1 else NAN, n


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of the non-NaN values.

    Resamples cases with replacement ``n_resamples`` times with a
    ``numpy.random.default_rng(seed)`` generator and returns the
    ``(1-level)/2`` and ``1-(1-level)/2`` percentiles of the resampled means.
    ``(nan, nan)`` when there is no value.
    """
    arr = _finite(values)
    if arr.size == 0:
        return NAN, NAN
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    # chunked so that many cases x many resamples never needs one huge index array
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // arr.size)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, arr.size, size=(stop - start, arr.size))
        means[start:stop] = arr[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def paired_wilcoxon(reference: Sequence[float], other: Sequence[float]) -> dict:
    """Two-sided paired Wilcoxon signed-rank test of ``reference`` against ``other``.

    The two sequences are aligned pairs (same case and class). Pairs with a NaN
    on either side are dropped. Returns ``{"n": pairs used, "statistic", "p"}``;
    ``p = 1.0`` when every difference is zero (no evidence of a difference) and
    NaN when no pair is left. Zero differences are discarded (Wilcoxon's
    convention, scipy's ``zero_method="wilcox"``); scipy then uses the exact null
    distribution for up to 50 untied differences, else the normal approximation.
    """
    from scipy.stats import wilcoxon

    a = np.asarray(reference, dtype=float).ravel()
    b = np.asarray(other, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = int(a.size)
    if n == 0:
        return {"n": 0, "statistic": NAN, "p": NAN}
    diff = a - b
    nonzero = diff[diff != 0]
    if nonzero.size == 0:
        return {"n": n, "statistic": 0.0, "p": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample / ties notes from scipy
        # zeros dropped here (Wilcoxon's convention) rather than by scipy, so that the
        # exact null distribution is used for small samples without ties (scipy falls
        # back to the normal approximation whenever zeros are present)
        res = wilcoxon(nonzero, alternative="two-sided")
    p = float(res.pvalue)
    return {"n": n, "statistic": float(res.statistic), "p": p if not math.isnan(p) else 1.0}
