"""Summary statistics: mean ± std, bootstrap confidence intervals, paired Wilcoxon tests, Holm.

All functions drop NaN values first (the metric policy's undefined distances
are counted elsewhere, never averaged in) and are deterministic given ``seed``.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
from scipy.stats import bootstrap, wilcoxon

NAN = float("nan")
BOOTSTRAP_BATCH = 500  # resamples per batch: bounded memory for many cases


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

    ``scipy.stats.bootstrap(method="percentile")``: cases are resampled with
    replacement ``n_resamples`` times from ``numpy.random.default_rng(seed)``
    and the ``(1-level)/2`` and ``1-(1-level)/2`` percentiles of the resampled
    means are returned. One value gives ``(v, v)``; none gives ``(nan, nan)``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    arr = _finite(values)
    if arr.size == 0:
        return NAN, NAN
    if arr.size == 1 or np.all(arr == arr[0]):  # every resample has the same mean (scipy refuses n=1)
        return float(arr[0]), float(arr[0])
    res = bootstrap(
        (arr,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        vectorized=True,
        batch=BOOTSTRAP_BATCH,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_wilcoxon(reference: Sequence[float], other: Sequence[float]) -> dict:
    """Two-sided paired Wilcoxon signed-rank test of ``reference`` against ``other``.

    The two sequences are aligned pairs (same case and class). Pairs with a NaN
    on either side are dropped. Returns ``{"n": pairs used, "statistic", "p"}``;
    ``p = 1.0`` when every difference is zero (no evidence of a difference) and
    NaN when no pair is left. Zero differences are discarded (Wilcoxon's
    convention, scipy's ``zero_method="wilcox"``); scipy then uses the exact null
    distribution for up to 50 untied differences, else the normal approximation.
    """
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


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of one family of p-values (NaN stays NaN, not counted).

    With the m defined p-values sorted ascending, p_(1) <= ... <= p_(m), the
    adjusted value is ``max_{j<=i} min(1, (m - j + 1) * p_(j))``: it controls the
    family-wise error rate, without assuming independence between the tests.
    """
    p = np.asarray(p_values, dtype=float).ravel()
    out = np.full(p.shape, NAN)
    defined = np.flatnonzero(~np.isnan(p))
    m = defined.size
    if m == 0:
        return out
    order = defined[np.argsort(p[defined], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)  # step-down: never below an earlier (smaller) one
    return out
