"""Tables of the summary: CSV (machine), Markdown and LaTeX (people).

Each (data set, class) gets, in LaTeX, two tables: the scores (Dice, IoU, HD95,
ASSD over the cases where defined) with every variant's parameter count, and the
distance policies (one-empty cases penalised with the image diagonal; for pixel
data sets, distances as a percentage of the image diagonal). Markdown (and so
``summary.html``) splits them into tables of two metrics each, narrow enough for
the Snakemake report's pane (about 1150 px) without sideways scrolling. Cells are
``mean ± std [95 % CI]``; p cells are ``raw (Holm)``. pandas renders the
tables: Markdown by ``DataFrame.to_markdown`` (tabulate), LaTeX by the
``Styler`` (booktabs rules, caption, label, the reference in bold).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluation.metrics import METRICS, shown_metrics, summary_metrics
from ..io_utils import atomic_path

FLOAT_FORMAT = "%.6g"


def _derived(policy: str) -> tuple[str, ...]:
    """The summary's ``penalised`` or ``percent`` distances."""
    return tuple(name for name, m in summary_metrics().items() if m.derived == policy)


def metric_label(metric: str) -> str:
    """A metric's column title (its registry label)."""
    return summary_metrics()[metric].label


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """CSV with fixed float formatting and ``\\n`` line ends, atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format=FLOAT_FORMAT, na_rep="nan", lineterminator="\n")


def format_p(p: float) -> str:
    """p-value for a table: three decimals, ``<0.001`` below, ``–`` when undefined."""
    if p is None or np.isnan(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _p_cell(r: pd.Series) -> str:
    if np.isnan(r["p_value"]):
        return "–"
    return f"{format_p(r['p_value'])} ({format_p(r['p_holm'])})"


def _cell(r: pd.Series, digits: int, latex: bool = False) -> str:
    if np.isnan(r["mean"]):
        return "–"
    f = f"{{:.{digits}f}}"
    std = "–" if np.isnan(r["std"]) else f.format(r["std"])
    ci = f"[{f.format(r['ci_low'])}, {f.format(r['ci_high'])}]"
    if latex:
        return f"${f.format(r['mean'])} \\pm {std}$ {ci}"
    return f"{f.format(r['mean'])} ± {std} {ci}"


def _digits(metric: str) -> int:
    return summary_metrics()[metric].digits


def table_groups(unit: str) -> list[tuple[str, tuple[str, ...]]]:
    """``[(title, metrics)]`` of the tables of one (data set, class)."""
    policy = (*_derived("penalised"), *_derived("percent")) if unit == "px" else _derived("penalised")
    return [("scores", shown_metrics()), ("distance policies", policy)]


def markdown_groups(unit: str) -> list[tuple[str, tuple[str, ...]]]:
    """``[(title, metrics)]`` of the Markdown tables of one (data set, class): two metrics each."""
    scores = shown_metrics()
    groups = [
        ("overlap", tuple(m for m in scores if not METRICS[m].distance)),
        ("distances (cases with both masks non-empty)", tuple(m for m in scores if METRICS[m].distance)),
        ("distances, a one-empty case counted as the image diagonal", _derived("penalised")),
    ]
    return groups + ([("distances as % of each image's diagonal", _derived("percent"))] if unit == "px" else [])


def table_rows(
    stats: pd.DataFrame,
    ds: str,
    k: int,
    variants: list[str],
    metrics: tuple[str, ...],
    reference: str,
    latex: bool = False,
) -> list[list[str]]:
    """Cells of one table: per variant, ``[name, (value, p) per metric..., n, NaN dist.]``."""
    sub = stats[(stats["dataset"] == ds) & (stats["class"] == k)]
    rows = []
    for v in variants:
        sv = sub[sub["variant"] == v].set_index("metric")
        if sv.empty:
            continue
        cells = [v]
        for m in metrics:
            r = sv.loc[m]
            cells += [_cell(r, _digits(m), latex), "ref" if v == reference else _p_cell(r)]
        cells += [str(int(sv.loc["dice", "n_cases"])), str(int(sv.loc["hd95", "n_nan_case_seed"]))]
        rows.append(cells)
    return rows


def _classes(stats: pd.DataFrame, datasets: list[str], class_names: dict) -> Iterator[tuple[str, int, str]]:
    """``(data set, class, class name)`` of every section of the tables, in order."""
    for ds in datasets:
        for k in sorted(stats.loc[stats["dataset"] == ds, "class"].unique()):
            yield ds, int(k), class_names.get(ds, {}).get(int(k), str(k))


def _header(
    metrics: tuple[str, ...],
    first: tuple[str, str],
    p: str,
    last: tuple[str, str],
    name: Callable[[str], str] = metric_label,
) -> list[str]:
    """Column titles: ``first``, then (metric name, ``p``) per metric, then ``last``."""
    return [*first, *(title for m in metrics for title in (name(m), p)), *last]


def _lead(reference: str) -> list[str]:
    return [
        "Mean ± std [95 % percentile-bootstrap CI of the mean] over test cases (each case averaged over "
        f"seeds); p (Holm): two-sided paired Wilcoxon signed-rank test of `{reference}` against the variant "
        "(paired by case; NaN pairs dropped), and in brackets Holm's adjustment over the variants compared "
        "for that data set, class and metric. HD95/ASSD exclude cases where exactly one mask is empty "
        "(counted in *NaN dist.*, over case × seed); *penalised* counts those cases as the image diagonal; "
        "*% diag.* is each case's distance as a percentage of its image diagonal (pixel data sets).",
        "",
    ]


def markdown_tables(
    stats: pd.DataFrame,
    datasets: list[str],
    variants: list[str],
    reference: str,
    class_names: dict[str, dict[int, str]],
    units: dict[str, str],
    n_seeds: dict[str, int],
    n_params: dict[tuple[str, str], int],
) -> str:
    """Markdown: per data set and class, tables of two metrics each (:func:`markdown_groups`)."""
    lines = ["# Summary", "", *_lead(reference)]
    for ds, k, name in _classes(stats, datasets, class_names):
        lines += [f"## {ds}: class {k} ({name})", "", f"{n_seeds.get(ds, 1)} seed(s); distances in {units[ds]}.", ""]
        for title, metrics in markdown_groups(units[ds]):
            head = _header(metrics, ("variant", "parameters"), "p (Holm)", ("n", "NaN dist."))
            body = [
                [f"**{v}** (ref)" if v == reference else v, f"{n_params[(ds, v)]:,}", *cells]
                for v, *cells in table_rows(stats, ds, k, variants, metrics, reference)
            ]
            lines += [f"{title[0].upper()}{title[1:]}:", "", _markdown(body, head), ""]
    return "\n".join(lines)


def _markdown(body: list[list[str]], head: list[str]) -> str:
    """A pipe table: first column left-aligned, the numbers right; cells kept as given (no number parsing)."""
    frame = pd.DataFrame(body, columns=range(len(head)))
    align = ("left", *["right"] * (len(head) - 1))
    return frame.to_markdown(index=False, headers=head, colalign=align, disable_numparse=True)


# LaTeX's special characters, escaped in one pass (no escape is escaped again)
_TEX = {"\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}"}
_TEX |= {"~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (captions and headers: free text, data set names)."""
    return re.sub(r"[\\_&%#$\{\}~^]", lambda m: _TEX[m.group()], text)


def _latex_table(
    stats: pd.DataFrame,
    ds: str,
    k: int,
    name: str,
    title: str,
    metrics: tuple[str, ...],
    variants: list[str],
    reference: str,
    unit: str,
    n_params: dict[tuple[str, str], int],
) -> str:
    label = f"tab:{re.sub(r'[^A-Za-z0-9]', '-', ds)}-class{k}-{title.split()[0]}"
    caption = (
        f"{_tex(ds)}, class {k} ({_tex(name)}), {title}: mean $\\pm$ std [95\\% bootstrap CI]; "
        f"$p$ (Holm): paired Wilcoxon signed-rank test of {_tex(reference)} vs.\\ each variant; "
        f"distances in {unit}."
    )
    head = _header(metrics, ("Variant", "Params"), "$p$ (Holm)", ("$n$", "NaN"), name=lambda m: _tex(metric_label(m)))
    body = [
        [v, f"{n_params[(ds, v)]:,}".replace(",", "{,}"), *(c.replace("<", "$<$").replace("–", "--") for c in cells)]
        for v, *cells in table_rows(stats, ds, k, variants, metrics, reference, latex=True)
    ]
    styler = (
        pd.DataFrame(body, columns=range(len(head)))
        .style.hide(axis="index")
        .format_index(lambda j: head[j], axis="columns")  # the headers above, already LaTeX
        .format(escape="latex", subset=[0])  # variant names are free text
        .map(lambda v: "textbf:--rwrap;" if v == reference else None, subset=[0])
        .set_table_styles([{"selector": "scriptsize", "props": ":;"}])
    )
    return styler.to_latex(
        environment="table",
        position="t",
        position_float="centering",
        hrules=True,
        column_format="lr" + "rr" * len(metrics) + "rr",
        caption=caption,
        label=label,
    )


def latex_tables(
    stats: pd.DataFrame,
    datasets: list[str],
    variants: list[str],
    reference: str,
    class_names: dict[str, dict[int, str]],
    units: dict[str, str],
    n_params: dict[tuple[str, str], int],
) -> str:
    """LaTeX (booktabs): two tables per data set and class."""
    out = [
        "% jointseg aggregate: mean $\\pm$ std [95% bootstrap CI]; p: paired Wilcoxon vs the reference,",
        "% Holm-adjusted in brackets. Needs \\usepackage{booktabs}.",
        "",
    ]
    for ds, k, name in _classes(stats, datasets, class_names):
        for title, metrics in table_groups(units[ds]):
            out.append(_latex_table(stats, ds, k, name, title, metrics, variants, reference, units[ds], n_params))
    return "\n".join(out)
