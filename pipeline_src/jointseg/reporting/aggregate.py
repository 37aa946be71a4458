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

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ..config import load_config
from ..io_utils import UserError, atomic_write_text
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


def log_to_mlflow(out: Path, config: dict) -> None:
    """Log the summary folder to the MLflow parent run, if one is open (tracking warns on failure)."""
    from ..tracking import log_parent_artifacts

    log_parent_artifacts([out], config=config)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg aggregate``."""
    parser.add_argument("--config", required=True, help="study config YAML (order, reference variant, report)")
    parser.add_argument("--out", required=True, help="output folder (the study's summary folder)")
    parser.add_argument("--metrics", nargs="+", required=True, metavar="FILE", help="metrics.csv of each run")
    parser.add_argument(
        "--run-configs",
        nargs="+",
        required=True,
        metavar="FILE",
        help="run_config.json of each run (training recipe, parameter counts)",
    )
    parser.add_argument(
        "--manifests",
        nargs="+",
        required=True,
        metavar="FILE",
        help="prepared manifest.json of each data set (classes, channels)",
    )
    parser.add_argument(
        "--histories",
        nargs="*",
        default=[],
        metavar="FILE",
        help="history.csv of each run, in the order of --run-configs",
    )
    parser.add_argument(
        "--test-images",
        nargs="*",
        default=[],
        metavar="DIR",
        help="test image folder of each data set, in the order of --manifests",
    )
    parser.add_argument(
        "--test-labels",
        nargs="*",
        default=[],
        metavar="DIR",
        help="test label folder of each data set, in the order of --manifests",
    )
    parser.add_argument(
        "--checkpoints",
        nargs="*",
        default=[],
        metavar="FILE",
        help="checkpoints for the qualitative and attention figures (the smallest seed of each variant is shown)",
    )
    parser.add_argument(
        "--predictions",
        nargs="*",
        default=[],
        metavar="DIR",
        help="prediction folder of each checkpoint, in the order of --checkpoints",
    )
    parser.add_argument(
        "--sections", nargs="*", default=[], metavar="FILE", help="Markdown files appended to report.md (claims.md)"
    )
    parser.add_argument("--no-figures", action="store_true", help="tables and statistics only")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the summary to the MLflow parent run")


def main(args: argparse.Namespace) -> int:
    """Run ``jointseg aggregate``."""
    config = load_config(args.config)
    out = Path(args.out)
    inputs = collect.collect(
        args.metrics,
        args.run_configs,
        args.manifests,
        args.histories,
        args.test_images,
        args.test_labels,
        args.checkpoints,
        args.predictions,
    )
    for section in args.sections:
        if not Path(section).is_file():
            raise UserError(f"{section}: report section not found; run `jointseg claims` first")
    sections = [Path(s) for s in args.sections]
    written = aggregate(config, inputs, out, figures=not args.no_figures, config_path=args.config, sections=sections)
    if not args.no_mlflow:
        log_to_mlflow(out, config)
    print(f"jointseg aggregate: wrote {len(written)} files to {out}")
    return 0
