"""``jointseg aggregate``: summary tables, statistics, figures and a report over all runs.

Every input is an explicit argument (Snakemake's ``input``), and each says
what it is in its own data (see :mod:`.collect`). Outputs under ``--out``:

``summary.csv``
    one row per data set, variant, seed and class: ``n_cases``,
    ``n_nan_distance`` (cases whose HD95/ASSD is undefined because exactly one
    mask is empty), ``n_params`` and the mean of every metric over the test
    cases, including the penalised and (pixel data sets) percentage distances.
``stats.csv``
    per data set, class, metric and variant, on per-case values averaged over
    seeds: n, mean, std, 95 % percentile-bootstrap CI, the paired Wilcoxon test
    of the reference variant against this one, and its Holm-adjusted p.
``summary.md`` / ``summary.tex``
    the training recipe and the tables (mean ± std [95 % CI], p (Holm), parameters).
``figures/``
    ``<ds>_boxplots.png``, ``<ds>_learning_curves.png``, ``<ds>_qualitative.png``, ``<ds>_attention.png``.
``plots/``
    ``<ds>_learning_curves.csv`` and ``<ds>_test_dice.csv``, plain tables for
    ``dvc plots show`` (:mod:`.dvc_plots`).
``report.md``
    metric policy, training recipe, links to all of the above, provenance.
``summary.html`` / ``report.html``
    ``summary.md`` and ``report.md`` as self-contained HTML pages (figures embedded), which the
    Snakemake report shows inline.

``--sections FILE ...`` (e.g. ``claims.md`` of ``jointseg claims``) are appended to
``report.md``, their headings one level down.

Every file is written atomically with fixed number formatting and sorted
rows, so identical inputs give byte-identical outputs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ..io_utils import atomic_write_text
from . import collect, summary, tables
from .collect import StudyInputs
from .dvc_plots import write_plot_tables
from .figure_set import make_figures
from .recipe import parameter_counts, recipe_markdown
from .report import report_markdown, write_html


def aggregate(
    config: dict,
    inputs: StudyInputs,
    out: Path,
    figures: bool = True,
    config_path: str | None = None,
    sections: Sequence[Path] = (),
) -> list[Path]:
    """Write every summary output; returns the files written."""
    df = summary.add_derived(inputs.metrics)
    datasets, variants = collect.orders(df, config)
    reference = config["reference_variant"]
    if reference not in variants:
        print(
            f"jointseg aggregate: warning: reference variant '{reference}' has no runs; no Wilcoxon tests",
            file=sys.stderr,
        )
    names, units = collect.class_names(inputs.manifests), collect.units(df)
    n_seeds = {ds: int(df.loc[df["dataset"] == ds, "seed"].nunique()) for ds in datasets}
    n_boot = int(config["report"]["bootstrap"])
    n_params = parameter_counts(inputs.run_configs, inputs.manifests)
    checkpoint = str(config["predict"]["checkpoint"])
    runs = {k: rc for k, rc in inputs.run_configs.items() if k[0] in datasets and k[1] in variants}
    recipe_md = recipe_markdown(runs, n_params, datasets, variants, checkpoint)

    pooled = summary.pooled_cases(df)
    stats = summary.compute_stats(pooled, datasets, variants, reference, units, n_boot)
    tables_md = tables.markdown_tables(stats, datasets, variants, reference, names, units, n_seeds, n_params)
    written = [out / "summary.csv", out / "stats.csv", out / "summary.md", out / "summary.tex"]
    tables.write_csv(summary.seed_summary(df, datasets, variants, n_params), written[0])
    tables.write_csv(stats, written[1])
    body = tables_md.split("\n", 1)[1]  # recipe right under the title
    atomic_write_text(written[2], f"# Summary\n\n{recipe_md}\n{body}\n")
    atomic_write_text(written[3], tables.latex_tables(stats, datasets, variants, reference, names, units, n_params))
    written += write_plot_tables(inputs.histories, inputs.metrics, datasets, variants, out / "plots")
    figure_paths, notes = [], []
    if figures:
        figure_paths, notes = make_figures(inputs, df, pooled, config, out, datasets, variants, names, units)
    for note in notes:
        print(f"jointseg aggregate: note: {note}", file=sys.stderr)
    report = out / "report.md"
    atomic_write_text(
        report,
        report_markdown(
            config, config_path, inputs.manifest_paths, out, datasets, recipe_md, tables_md, figure_paths, notes
        )
        + "".join("\n" + re.sub(r"(?m)^#", "##", Path(s).read_text()) for s in sections),
    )
    # HTML pages of the two Markdown files: the Snakemake report shows HTML inline.
    pages = [write_html(written[2], out / "summary.html"), write_html(report, out / "report.html")]
    return written + figure_paths + [report] + pages
