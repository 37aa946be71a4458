"""The paper's claims, each decided by tests fixed before any result was seen (docs/science.md, "Claims").

Claims (:func:`claims`):

- ``locality``: point-wise attention localises better and self-attention is more global:
  every paired test of ``pointwise`` against ``self`` over the test cases
  (:mod:`.attention_summary`: mean attention distance lower, own-object mass higher;
  the effective area is reported, not decisive), Holm over all of them;
- ``sota_<baseline>``: ``joint`` outperforms each cited comparator (the registries' ``cited``) on
  Dice (higher) and the penalised HD95 (lower), per data set and class: paired Wilcoxon
  over the test cases (pooled over seeds); Holm over every such test of the study;
- ``balance``: ``joint`` is more balanced than ``pointwise`` and ``self``
  (:mod:`.balance`): both bootstrap CIs of ``balance(joint) - balance(v)`` below 0.

Verdict (:func:`verdict`): ``supported`` when every test of the claim favours it
(Holm p < 0.05, or the CI excludes 0, in the claim's direction); ``not supported``
when any test significantly favours the alternative; ``inconclusive`` otherwise,
and whenever a test cannot run (a variant missing, fewer than :data:`MIN_PAIRS`
paired cases), with the reason.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..architectures import cited
from .attention_summary import DECIDING, LOCAL_WHEN
from .balance import BALANCE_METRICS
from .balance import REQUIRED as BALANCE_REQUIRED
from .stats import bootstrap_ci, holm, paired_wilcoxon

ALPHA = 0.05
MIN_PAIRS = 6
"""The fewest pairs with which a two-sided exact Wilcoxon test can reach p < 0.05 (n = 5: p >= 0.0625)."""
SOTA_METRICS: dict[str, int] = BALANCE_METRICS
"""metric -> the sign of ``joint - baseline`` that favours joint (the balance's metrics, fixed before any result)."""
BOOTSTRAP_SEED = 0
TEST_COLUMNS: tuple[str, ...] = (
    "claim",
    "dataset",
    "variants",
    "metric",
    "detail",
    "n",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "favours",
    "note",
)


def claims() -> dict[str, str]:
    """Every claim and its statement: locality, one per cited comparator (:func:`jointseg.architectures.cited`),
    balance."""
    return {
        "locality": "Point-wise attention localises better; self-attention learns more global features.",
        **{f"sota_{b}": f"Joint attention outperforms {b} (Dice, HD95)." for b in cited()},
        "balance": "Joint attention gives more balanced results than point-wise and self-attention.",
    }


def favours(effect: float, direction: int, p_holm: float = math.nan, ci: tuple[float, float] | None = None) -> str:
    """``claim``, ``alternative`` or ``neither``: a significant effect (Holm p, else the CI) and its sign."""
    if ci is not None and math.isnan(p_holm):
        lo, hi = ci
        significant = not (math.isnan(lo) or math.isnan(hi)) and (lo > 0 or hi < 0)
    else:
        significant = not math.isnan(p_holm) and p_holm < ALPHA
    if not significant or math.isnan(effect) or effect == 0:
        return "neither"
    return "claim" if np.sign(effect) == direction else "alternative"


def verdict(tests: pd.DataFrame, why_not: str = "") -> tuple[str, str]:
    """``(verdict, reason)`` of one claim from its tests (rows of :data:`TEST_COLUMNS`)."""
    if why_not:
        return "inconclusive", why_not
    if tests.empty:
        return "inconclusive", "no test could run"
    against = tests[tests["favours"] == "alternative"]
    if not against.empty:
        return "not supported", f"{len(against)} of {len(tests)} test(s) significantly favour the alternative"
    if (tests["favours"] == "claim").all():
        return "supported", f"all {len(tests)} test(s) favour the claim"
    notes = sorted({n for n in tests["note"] if n})
    n_for = int((tests["favours"] == "claim").sum())
    return "inconclusive", f"{n_for} of {len(tests)} test(s) favour the claim" + (
        f"; {'; '.join(notes)}" if notes else ""
    )


def deciding_test(tests: pd.DataFrame, result: str) -> pd.Series | None:
    """The test a verdict rests on: the strongest contrary one, the weakest supporting one, else the weakest.

    Tests rank by Holm p; a CI test (no p) ranks as decided (0) when it favours a side, else undecided (1).
    """
    if tests.empty:
        return None
    decided = tests["favours"].ne("neither").astype(float).rsub(1.0)
    ranked = tests.assign(_rank=tests["p_holm"].astype(float).fillna(decided)).sort_values("_rank", kind="stable")
    if result == "not supported":
        return ranked[ranked["favours"] == "alternative"].iloc[0]
    pending = ranked[ranked["favours"] != "claim"]
    return (pending if result != "supported" and not pending.empty else ranked).iloc[-1]


CLAIM_COLUMNS: tuple[str, ...] = (
    "claim",
    "statement",
    "verdict",
    "reason",
    "n_tests",
    "n_favour",
    "n_against",
    "family",
    "deciding_test",
    "n",
    "effect",
    "ci_low",
    "ci_high",
    "p_holm",
)
FAMILIES: dict[str, str] = {
    "locality": "pointwise vs self: data set x pointwise branch x query kind x {distance, own-object mass} (Holm)",
    "sota": "joint vs each cited comparator: data set x class x {dice, hd95_penalised} (Holm over all)",
    "balance": "balance(joint) - balance(v), v in {pointwise, self}: case-bootstrap 95 % CI",
}


def claim_row(claim: str, tests: pd.DataFrame, why_not: str = "") -> dict:
    """One row of ``claims.csv`` (:data:`CLAIM_COLUMNS`): the verdict and the test it rests on."""
    result, reason = verdict(tests, why_not)
    deciding = deciding_test(tests, result) if not why_not else None
    row = {
        "claim": claim,
        "statement": claims()[claim],
        "verdict": result,
        "reason": reason,
        "n_tests": len(tests),
        "n_favour": int((tests["favours"] == "claim").sum()) if len(tests) else 0,
        "n_against": int((tests["favours"] == "alternative").sum()) if len(tests) else 0,
        "family": FAMILIES["sota" if claim.startswith("sota_") else claim],
        "deciding_test": "",
        **dict.fromkeys(("n", "effect", "ci_low", "ci_high", "p_holm"), math.nan),
    }
    if deciding is not None:
        row["deciding_test"] = (
            f"{deciding['dataset']}: {deciding['variants']}, {deciding['metric']} ({deciding['detail']})"
        )
        row.update({k: deciding[k] for k in ("n", "effect", "ci_low", "ci_high", "p_holm")})
    return row


def _note_pairs(n: int) -> str:
    return f"too few paired cases (n={n} < {MIN_PAIRS})" if n < MIN_PAIRS else ""


def locality_tests(attention: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The locality claim's tests from ``attention_stats.csv`` rows (Holm already over this family)."""
    rows = attention[
        (attention["variant"] == "pointwise") & attention["versus"].eq("self") & attention["measure"].isin(DECIDING)
    ]
    if rows.empty:
        missing = [v for v in ("pointwise", "self") if v not in set(attention["variant"])]
        why = f"no attention statistics of {' and '.join(missing)}" if missing else "no paired queries"
        return pd.DataFrame(columns=list(TEST_COLUMNS)), why
    tests = []
    for r in rows.itertuples(index=False):
        direction = LOCAL_WHEN[r.measure]
        tests.append(
            {
                "claim": "locality",
                "dataset": r.dataset,
                "variants": "pointwise - self",
                "metric": r.measure,
                "detail": f"{r.branch}, {r.kind} queries",
                "n": int(r.n_pairs),
                "effect": r.diff_mean,
                "ci_low": r.diff_ci_low,
                "ci_high": r.diff_ci_high,
                "p_value": r.p_value,
                "p_holm": r.p_holm,
                "favours": favours(r.diff_mean, direction, r.p_holm),
                "note": _note_pairs(int(r.n_pairs)),
            }
        )
    return pd.DataFrame(tests, columns=list(TEST_COLUMNS)), ""


def sota_tests(pooled: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    """Joint against every cited comparator present, per data set, class and metric; Holm over all of them."""
    tests = []
    if "joint" not in set(pooled["variant"]):
        return pd.DataFrame(columns=list(TEST_COLUMNS))
    for (ds, k), g in pooled.groupby(["dataset", "class"], sort=False):
        joint = g[g["variant"] == "joint"].set_index("case")
        for baseline in [b for b in cited() if b in set(g["variant"])]:
            other = g[g["variant"] == baseline].set_index("case")
            common = joint.index.intersection(other.index).sort_values()
            for metric, direction in SOTA_METRICS.items():
                a, b = joint.loc[common, metric].to_numpy(float), other.loc[common, metric].to_numpy(float)
                test = paired_wilcoxon(a, b)
                lo, hi = bootstrap_ci(a - b, n_resamples=n_boot, seed=BOOTSTRAP_SEED)
                tests.append(
                    {
                        "claim": f"sota_{baseline}",
                        "dataset": ds,
                        "variants": f"joint - {baseline}",
                        "metric": metric,
                        "detail": f"class {int(k)}",
                        "n": test["n"],
                        "effect": float(np.nanmean(a - b)) if test["n"] else math.nan,
                        "ci_low": lo,
                        "ci_high": hi,
                        "p_value": test["p"],
                        "_direction": direction,
                    }
                )
    frame = pd.DataFrame(tests)
    if frame.empty:
        return pd.DataFrame(columns=list(TEST_COLUMNS))
    frame["p_holm"] = holm(frame["p_value"].to_numpy(float))
    frame["favours"] = [favours(e, d, p) for e, d, p in zip(frame["effect"], frame["_direction"], frame["p_holm"])]
    frame["note"] = [_note_pairs(int(n)) for n in frame["n"]]
    return frame[list(TEST_COLUMNS)]


def balance_tests(balance: pd.DataFrame, study: set[str]) -> tuple[pd.DataFrame, str]:
    """The balance claim's two CI tests, ``balance(joint) - balance(v)`` for v = pointwise, self.

    ``study``: the runs the study has (a missing variant is the reason the claim cannot be tested).
    """
    missing = [v for v in BALANCE_REQUIRED if v not in study]
    if missing:
        return pd.DataFrame(columns=list(TEST_COLUMNS)), f"variant(s) {', '.join(missing)} not in the study"
    if balance.empty:
        return pd.DataFrame(columns=list(TEST_COLUMNS)), "no test case that every variant has"
    tests = []
    for r in balance[balance["variant"].isin(["pointwise", "self"])].itertuples(index=False):
        ci = (r.diff_ci_low, r.diff_ci_high)
        tests.append(
            {
                "claim": "balance",
                "dataset": "all",
                "variants": f"joint - {r.variant}",
                "metric": "balance",
                "detail": f"{r.n_families} families ({r.n_degenerate} degenerate)",
                "n": math.nan,
                "effect": r.joint_minus,
                "ci_low": ci[0],
                "ci_high": ci[1],
                "p_value": math.nan,
                "p_holm": math.nan,
                "favours": favours(r.joint_minus, -1, ci=ci),
                "note": "",
            }
        )
    return pd.DataFrame(tests, columns=list(TEST_COLUMNS)), ""
