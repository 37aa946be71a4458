"""Figure of the attention statistics: per data set and measure, each variant's and branch's mean
with its 95 % CI, foreground and background queries apart, beside the uniform map's value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .attention_summary import KINDS, MEASURES
from .figures import plt, save_figure

TITLES = {"distance": "mean attention distance", "area": "effective area exp(H)/L", "object_mass": "own-object mass"}
KIND_STYLE = {"foreground": ("#d62728", "o"), "background": ("#1f77b4", "s")}


def _panel(ax, sub: pd.DataFrame, rows: list[tuple[str, str]], measure: str, unit: str) -> None:
    for k, kind in enumerate(KINDS):
        part = sub[(sub["measure"] == measure) & (sub["kind"] == kind)].set_index(["variant", "branch"])
        ys = [i + (k - 0.5) * 0.3 for i, key in enumerate(rows) if key in part.index]
        got = part.loc[[key for key in rows if key in part.index]]
        if got.empty:
            continue
        colour, marker = KIND_STYLE[kind]
        # a percentile CI need not hold the mean (float error, skewed samples): no negative bar
        err = np.clip([got["mean"] - got["ci_low"], got["ci_high"] - got["mean"]], 0, None)
        ax.errorbar(got["mean"], ys, xerr=err, fmt=marker, color=colour, ms=4, capsize=2, label=f"{kind} queries")
        ax.axvline(float(got["uniform_mean"].mean()), color=colour, ls="--", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{v}: {b}" for v, b in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(TITLES[measure] + (f" ({unit})" if measure == "distance" else ""), fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def attention_stats_figure(table: pd.DataFrame, datasets: list[str], path: str | Path) -> Path:
    """One row of panels per data set (distance, area, own-object mass).

    Dashed lines: each query kind's value under a uniform attention map (the most global map).
    Without rows (no variant with positional maps) the figure says so.
    """
    shown = [ds for ds in datasets if ds in set(table["dataset"])]
    if not shown:
        fig, ax = plt.subplots(figsize=(6, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no attention statistics: no run with positional attention maps", ha="center")
        return save_figure(fig, path)
    fig, axes = plt.subplots(len(shown), len(MEASURES), squeeze=False, figsize=(12, 0.5 + 2.6 * len(shown)))
    for r, ds in enumerate(shown):
        sub = table[table["dataset"] == ds]
        rows = list(dict.fromkeys(zip(sub["variant"], sub["branch"])))
        unit = next((u for u in sub["unit"] if isinstance(u, str) and u), "")
        for c, measure in enumerate(MEASURES):
            _panel(axes[r][c], sub, rows, measure, unit)
        axes[r][0].set_title(ds, loc="left", fontsize=9)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle("Attention locality per variant and branch: mean [95 % CI]; dashed: a uniform map", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
