"""``jointseg claims``: attention statistics, balance and the claims table of a study.

    jointseg claims --config CONFIG --out results/<study>/summary \\
        --metrics <every run's metrics.csv> --attention-stats <every attention run's attention_stats.csv>

Writes under ``--out`` (each atomically, rows sorted, fixed number formats):
``attention_stats.csv`` (:mod:`.attention_summary`), ``attention_stats.png``,
``balance.csv`` (:mod:`.balance`), ``claims_tests.csv`` (every test of every claim),
``claims.csv`` (one row per claim with its verdict, :mod:`.claims`), ``claims.md`` and
``claims.html``. ``jointseg aggregate --sections claims.md`` puts ``claims.md`` into the report.
A claim whose test cannot run reads ``inconclusive`` with the reason; it is never an error.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..architectures import cited
from ..io_utils import atomic_write_text
from . import attention_summary as att
from . import claims as cl
from .attention_plot import attention_stats_figure
from .balance import BALANCE_METRICS, BALANCE_VARIANTS, balance_table
from .collect import orders, read_metrics_files
from .report import write_html
from .summary import add_derived, pooled_cases
from .tables import format_p, write_csv

VERDICT_RULE = (
    "Verdict rule (fixed before any result): `supported` when every test of the claim favours it "
    "(Holm-adjusted p < 0.05, or for the balance the bootstrap 95 % CI excluding 0, in the claim's "
    "direction); `not supported` when any test significantly favours the alternative; otherwise "
    "`inconclusive`, as also when a test cannot run (a variant or comparator missing, fewer than "
    f"{cl.MIN_PAIRS} paired cases). Effects are mean paired differences with their bootstrap 95 % CI."
)


def _num(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def _ci(mean: float, lo: float, hi: float) -> str:
    return "–" if math.isnan(float(mean)) else f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"


def md_table(head: list[str], rows: list[list[str]], text: tuple[int, ...] = ()) -> list[str]:
    """A Markdown pipe table: the first column and the ``text`` columns left-aligned, the others right."""
    align = ["---" if k == 0 or k in text else "---:" for k in range(len(head))]
    return ["| " + " | ".join(r) + " |" for r in [head, align, *rows]] + [""]


def claims_markdown(
    claims: pd.DataFrame, tests: pd.DataFrame, attention: pd.DataFrame, balance: pd.DataFrame, unmeasured: list[str]
) -> str:
    """The text of ``claims.md``: the claims, the attention statistics, the balance, every test.

    ``unmeasured``: attention variants of the study without statistics (no positional map).
    """
    lines = ["# Claims", "", VERDICT_RULE, "", FILES_LINE, ""]
    lines += md_table(
        ["claim", "verdict", "deciding test", "effect [95 % CI]", "p (Holm)", "why"],
        [
            [r.claim, f"**{r.verdict}**", r.deciding_test or "–", _ci(r.effect, r.ci_low, r.ci_high)]
            + [format_p(r.p_holm), r.reason]
            for r in claims.itertuples(index=False)
        ],
        text=(2, 5),  # the deciding test and the reason wrap
    )
    lines += ["## Attention statistics", "", ATTENTION_TEXT, ""]
    if unmeasured:
        lines += [f"Not measured (no positional attention map, or no run given): {', '.join(unmeasured)}.", ""]
    for ds, g in attention.groupby("dataset", sort=False):
        unit = next((u for u in g["unit"] if isinstance(u, str) and u), "")
        lines += [f"### {ds}", ""]
        body = []
        for (v, b, kind), h in g.groupby(["variant", "branch", "kind"], sort=False):
            cells = {m.measure: m for m in h.itertuples(index=False)}
            n = cells["distance"]
            row = [f"{v}: {b}", kind, f"{n.n_cases} ({n.n_queries})"]
            for m in att.MEASURES:
                r = cells.get(m)
                row.append("–" if r is None else _ci(r.mean, r.ci_low, r.ci_high))
                row.append("–" if r is None or math.isnan(r.p_holm) else format_p(r.p_holm))
            body.append(row)
        head = ["variant: branch", "queries", "cases (queries)", f"distance ({unit})", "p (Holm)", "area", "p (Holm)"]
        head += ["own-object mass", "p (Holm)"]
        lines += md_table(head, body)
    if len(attention):
        lines += ["![attention statistics](attention_stats.png)", ""]
    lines += ["## Balance", "", BALANCE_TEXT, ""]
    lines += md_table(
        ["variant", "balance [95 % CI]", "joint − variant [95 % CI]", "families (degenerate)", "worst family"],
        [
            [r.variant, _ci(r.balance, r.ci_low, r.ci_high), _ci(r.joint_minus, r.diff_ci_low, r.diff_ci_high)]
            + [f"{r.n_families} ({r.n_degenerate})", r.worst_family or "–"]
            for r in balance.itertuples(index=False)
        ],
    )
    lines += ["## Tests", ""]
    lines += md_table(
        ["claim", "data set", "variants", "metric", "detail", "n", "effect [95 % CI]", "p", "p (Holm)", "favours"],
        [
            [r.claim, r.dataset, r.variants, r.metric, r.detail, _num(r.n), _ci(r.effect, r.ci_low, r.ci_high)]
            + [format_p(r.p_value), format_p(r.p_holm), r.favours + (f" ({r.note})" if r.note else "")]
            for r in tests.itertuples(index=False)
        ],
        text=(4, 9),  # the detail and the verdict of each test wrap
    )
    return "\n".join(lines).rstrip() + "\n"


FILES_LINE = (
    "Files: [claims.csv](claims.csv) (verdicts), [claims_tests.csv](claims_tests.csv) (every test), "
    "[attention_stats.csv](attention_stats.csv), [balance.csv](balance.csv)."
)
ATTENTION_TEXT = (
    "Per test query (fixed, seeded cells of the reference label at the attention grid's resolution, the same "
    "for every variant and seed; averaged over seeds): mean attention distance (mm for volumes, px of the "
    "network input for images), effective area exp(H)/L (1/L one-hot, 1 uniform), and for foreground queries "
    "the attention mass on the query's own object. Each case counts once (the mean of its queries): mean "
    "[bootstrap 95 % CI over cases]; p: Holm-adjusted paired Wilcoxon of each pointwise branch against self, "
    "paired by case over the queries both have (distance and own-object mass: the locality claim's family; "
    "area: a family of its own)."
)
BALANCE_TEXT = (
    f"balance(v) = max over families (data set × class × metric in {{{', '.join(BALANCE_METRICS)}}}) of "
    "|m(v) − m(best)| / |m(best) − m(worst)| over the variants "
    f"{{{', '.join(BALANCE_VARIANTS)}}} present: 0 = never behind. CIs from a case bootstrap (the same "
    "resampled cases for every variant)."
)


def build_claims(pooled: pd.DataFrame, attention: pd.DataFrame, balance: pd.DataFrame, n_boot: int, study: set):
    """``(claims, tests)``: one row per claim of :func:`.claims.claims` and every test behind them."""
    loc, loc_why = cl.locality_tests(attention)
    sota = cl.sota_tests(pooled, n_boot)
    bal, bal_why = cl.balance_tests(balance, study)
    rows = [cl.claim_row("locality", loc, loc_why)]
    for baseline in cited():
        claim = f"sota_{baseline}"
        missing = [r for r in ("joint", baseline) if r not in study]
        why = f"{' and '.join(missing)} not in the study" if missing else ""
        rows.append(cl.claim_row(claim, sota[sota["claim"] == claim], why))
    rows.append(cl.claim_row("balance", bal, bal_why))
    parts = [t for t in (loc, sota, bal) if len(t)]
    tests = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(cl.TEST_COLUMNS))
    return pd.DataFrame(rows, columns=list(cl.CLAIM_COLUMNS)), tests


def write_claims(config: dict, metrics: list[str], attention_files: list[str], out: Path) -> list[Path]:
    """Every output of ``jointseg claims`` (module docstring); returns the files written."""
    df = add_derived(read_metrics_files(metrics))
    datasets, variants = orders(df, config)
    n_boot = int(config["report"]["bootstrap"])
    pooled = pooled_cases(df)
    queries = att.pooled_queries(att.read_query_files(attention_files))
    attention = att.attention_table(queries, datasets, variants, n_boot)
    balance = balance_table(pooled, n_boot)
    claims, tests = build_claims(pooled, attention, balance, n_boot, set(variants))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (
        ("attention_stats", attention),
        ("balance", balance),
        ("claims_tests", tests),
        ("claims", claims),
    ):
        write_csv(frame, out / f"{name}.csv")
        written.append(out / f"{name}.csv")
    written.append(attention_stats_figure(attention, datasets, out / "attention_stats.png"))
    unmeasured = [v for v in config["variants"] if v != "none" and v not in set(attention["variant"])]
    atomic_write_text(out / "claims.md", claims_markdown(claims, tests, attention, balance, unmeasured))
    written += [out / "claims.md", write_html(out / "claims.md", out / "claims.html")]
    return written
