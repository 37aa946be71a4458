"""``jointseg aggregate``: summary tables, statistics, figures and a report over all runs.

Inputs are the runs' ``results/<dataset>/<variant>/seed<k>/metrics.csv`` (from
``jointseg evaluate``), their ``history.csv`` and checkpoints, and the
prepared test data. Outputs under ``--out`` (default ``results/summary``):

``summary.csv``
    one row per data set, variant, seed and class: the mean of every metric
    over the test cases, ``n_cases`` and ``n_nan_distance`` (cases whose
    HD95/ASSD is undefined because exactly one mask is empty; they are left out
    of the distance means, never averaged in).
``stats.csv``
    per data set, class, metric and variant, pooled over seeds (each case's
    value is first averaged over the seeds in which it is defined): n, mean,
    std, 95 % percentile-bootstrap CI of the mean, and the paired two-sided
    Wilcoxon signed-rank test of the reference variant (config
    ``reference_variant``) against this variant, paired by case and class.
``summary.md`` / ``summary.tex``
    the same as tables (mean ± std [95 % CI], Wilcoxon p) for Dice, IoU, HD95, ASSD.
``figures/``
    ``<ds>_boxplots.png``, ``<ds>_learning_curves.png``, ``<ds>_qualitative.png``,
    ``<ds>_attention.png``.
``report.md``
    links to all of the above, with the config, code commit and data hashes.

Every file is written atomically with fixed number formatting and sorted
rows, so identical inputs give byte-identical outputs. Runs are found from the
config (every data set x ``run_names`` x seed); ``--metrics FILE ...`` instead
takes an explicit list (Snakemake's ``input``), each path ending in
``<dataset>/<variant>/seed<k>/metrics.csv``.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .config import load_config, run_names
from .evaluate import read_metrics
from .io_utils import UserError, atomic_path, atomic_write_text, sha256_file
from .metrics import METRICS
from .stats import bootstrap_ci, mean_std, paired_wilcoxon

FLOAT_FORMAT = "%.6g"
TABLE_METRICS: tuple[str, ...] = ("dice", "iou", "hd95", "assd")
TABLE_NAMES = {"dice": "Dice", "iou": "IoU", "hd95": "HD95", "assd": "ASSD"}
SEED_DIR = re.compile(r"^seed(\d+)$")
BOOTSTRAP_SEED = 0  # one fixed generator seed for every CI: reruns give the same intervals


# --------------------------------------------------------------------------- collecting
def run_dir(results: Path, dataset: str, variant: str, seed: int) -> Path:
    """``results/<dataset>/<variant>/seed<k>``."""
    return results / dataset / variant / f"seed{seed}"


def parse_metrics_path(path: Path) -> tuple[str, str, int]:
    """``(dataset, variant, seed)`` from ``.../<dataset>/<variant>/seed<k>/metrics.csv``."""
    parts = path.parts
    match = SEED_DIR.match(parts[-2]) if len(parts) >= 4 else None
    if match is None or path.name != "metrics.csv":
        raise UserError(f"{path}: expected a path ending in <dataset>/<variant>/seed<k>/metrics.csv")
    return parts[-4], parts[-3], int(match.group(1))


def expected_runs(config: dict, results: Path) -> list[tuple[str, str, int, Path]]:
    """Every ``(dataset, variant, seed, metrics path)`` the config asks for."""
    return [
        (ds, v, int(s), run_dir(results, ds, v, int(s)) / "metrics.csv")
        for ds in config["datasets"]
        for v in run_names(config)
        for s in config["seeds"]
    ]


def collect_metrics(runs: Sequence[tuple[str, str, int, Path]]) -> pd.DataFrame:
    """Concatenate the runs' metrics tables with ``dataset, variant, seed`` columns."""
    missing = [str(p) for _, _, _, p in runs if not Path(p).is_file()]
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise UserError(
            f"{len(missing)} metrics file(s) missing: {', '.join(missing[:5])}{more}; "
            "run `jointseg evaluate` for those runs (or the workflow) first"
        )
    frames = []
    for ds, v, s, path in runs:
        df = read_metrics(path)
        if df.empty:
            raise UserError(f"{path}: metrics file has no rows; re-run `jointseg evaluate`")
        frames.append(df.assign(dataset=ds, variant=v, seed=s))
    if not frames:
        raise UserError("no runs to aggregate; check the config's datasets, variants and seeds")
    return pd.concat(frames, ignore_index=True)[["dataset", "variant", "seed", "case", "class", *METRICS]]


def _orders(df: pd.DataFrame, config: dict) -> tuple[list[str], list[str]]:
    """Data sets and variants in config order, then any others (explicit --metrics) sorted."""
    datasets = [d for d in config["datasets"] if d in set(df["dataset"])]
    datasets += sorted(set(df["dataset"]) - set(datasets))
    variants = [v for v in run_names(config) if v in set(df["variant"])]
    variants += sorted(set(df["variant"]) - set(variants))
    return datasets, variants


def _sort(df: pd.DataFrame, datasets: list[str], variants: list[str], keys: Sequence[str]) -> pd.DataFrame:
    order = {"dataset": {d: i for i, d in enumerate(datasets)}, "variant": {v: i for i, v in enumerate(variants)},
             "metric": {m: i for i, m in enumerate(METRICS)}}

    def key(col: pd.Series) -> pd.Series:
        return col.map(order[col.name]) if col.name in order else col

    return df.sort_values(list(keys), key=key, kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- statistics
def seed_summary(df: pd.DataFrame, datasets: list[str], variants: list[str]) -> pd.DataFrame:
    """One row per data set, variant, seed and class: metric means (NaN excluded), counts."""
    rows = []
    for (ds, v, s, k), g in df.groupby(["dataset", "variant", "seed", "class"], sort=False):
        row = {"dataset": ds, "variant": v, "seed": int(s), "class": int(k), "n_cases": int(g["case"].nunique()),
               "n_nan_distance": int(g["hd95"].isna().sum())}
        for m in METRICS:
            vals = g[m].to_numpy(dtype=float)
            row[m] = float(np.nanmean(vals)) if np.any(~np.isnan(vals)) else float("nan")
        rows.append(row)
    return _sort(pd.DataFrame(rows), datasets, variants, ["dataset", "variant", "seed", "class"])


def pooled_cases(df: pd.DataFrame) -> pd.DataFrame:
    """Per case and class, each metric averaged over the seeds in which it is defined.

    Adds ``n_nan_seeds``: in how many seeds the case's distances were undefined.
    """
    keys = ["dataset", "variant", "class", "case"]
    grouped = df.groupby(keys, sort=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN groups stay NaN
        pooled = grouped[list(METRICS)].mean()  # pandas' mean skips NaN
    pooled["n_nan_seeds"] = grouped["hd95"].apply(lambda s: int(s.isna().sum()))
    return pooled.reset_index()


def compute_stats(
    pooled: pd.DataFrame,
    datasets: list[str],
    variants: list[str],
    reference: str,
    n_boot: int = 2000,
) -> pd.DataFrame:
    """Per data set, class, metric and variant: n, mean ± std, bootstrap CI, Wilcoxon vs ``reference``."""
    rows = []
    for (ds, k), g in pooled.groupby(["dataset", "class"], sort=False):
        by_variant = {v: gv.set_index("case") for v, gv in g.groupby("variant", sort=False)}
        ref = by_variant.get(reference)
        for metric in METRICS:
            for v, gv in by_variant.items():
                vals = gv[metric].to_numpy(dtype=float)
                mean, std, n = mean_std(vals)
                lo, hi = bootstrap_ci(vals, n_resamples=n_boot, seed=BOOTSTRAP_SEED)
                row = {"dataset": ds, "class": int(k), "metric": metric, "variant": v,
                       "n_cases": int(len(vals)), "n": n, "n_nan": int(np.isnan(vals).sum()),
                       "n_nan_case_seed": int(gv["n_nan_seeds"].sum()) if metric in ("hd95", "assd") else 0,
                       "mean": mean, "std": std, "ci_low": lo, "ci_high": hi,
                       "reference": reference, "n_pairs": 0, "wilcoxon_statistic": float("nan"),
                       "p_value": float("nan")}
                if ref is not None and v != reference:
                    common = ref.index.intersection(gv.index).sort_values()
                    test = paired_wilcoxon(ref.loc[common, metric].to_numpy(float),
                                           gv.loc[common, metric].to_numpy(float))
                    row.update(n_pairs=test["n"], wilcoxon_statistic=test["statistic"], p_value=test["p"])
                rows.append(row)
    return _sort(pd.DataFrame(rows), datasets, variants, ["dataset", "class", "metric", "variant"])


# --------------------------------------------------------------------------- tables
def format_p(p: float) -> str:
    """p-value for a table: three decimals, ``<0.001`` below, ``–`` when undefined."""
    if p is None or np.isnan(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _cell(r: pd.Series, digits: int, latex: bool = False) -> str:
    if np.isnan(r["mean"]):
        return "–"
    f = f"{{:.{digits}f}}"
    std = "–" if np.isnan(r["std"]) else f.format(r["std"])
    ci = f"[{f.format(r['ci_low'])}, {f.format(r['ci_high'])}]"
    if latex:
        return f"${f.format(r['mean'])} \\pm {std}$ {ci}"
    return f"{f.format(r['mean'])} ± {std} {ci}"


def _table_rows(stats: pd.DataFrame, ds: str, k: int, variants: list[str]) -> list[dict]:
    sub = stats[(stats["dataset"] == ds) & (stats["class"] == k)]
    out = []
    for v in variants:
        sv = sub[sub["variant"] == v].set_index("metric")
        if sv.empty:
            continue
        out.append({"variant": v, "stats": sv, "n": int(sv.loc["dice", "n_cases"]),
                    "nan": int(sv.loc["hd95", "n_nan_case_seed"])})
    return out


def _digits(metric: str) -> int:
    return 3 if metric in ("dice", "iou") else 2


def markdown_tables(stats: pd.DataFrame, datasets: list[str], variants: list[str], reference: str,
                    class_names: dict[str, dict[int, str]], units: dict[str, str], n_seeds: dict[str, int]) -> str:
    """Markdown: one table per data set and class."""
    lines = ["# Summary", "",
             "Mean ± std [95 % bootstrap CI of the mean] over test cases (each case averaged over seeds); "
             f"p: two-sided paired Wilcoxon signed-rank test of `{reference}` against the variant "
             "(paired by case; NaN pairs dropped). HD95/ASSD exclude cases where exactly one mask is empty "
             "(counted in *NaN dist.*, over case × seed).", ""]
    for ds in datasets:
        for k in sorted(stats.loc[stats["dataset"] == ds, "class"].unique()):
            name = class_names.get(ds, {}).get(int(k), str(k))
            lines += [f"## {ds}: class {k} ({name})", "",
                      f"{n_seeds.get(ds, 1)} seed(s); distances in {units.get(ds, 'px')}.", ""]
            head = ["variant"]
            for m in TABLE_METRICS:
                head += [TABLE_NAMES[m], "p"]
            head += ["n", "NaN dist."]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
            for row in _table_rows(stats, ds, int(k), variants):
                v = row["variant"]
                cells = [f"**{v}** (ref)" if v == reference else v]
                for m in TABLE_METRICS:
                    r = row["stats"].loc[m]
                    cells += [_cell(r, _digits(m)), "ref" if v == reference else format_p(r["p_value"])]
                cells += [str(row["n"]), str(row["nan"])]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#")):
        text = text.replace(a, b)
    return text


def latex_tables(stats: pd.DataFrame, datasets: list[str], variants: list[str], reference: str,
                 class_names: dict[str, dict[int, str]], units: dict[str, str]) -> str:
    """LaTeX (booktabs): one table per data set and class."""
    out = ["% jointseg aggregate: mean $\\pm$ std [95% bootstrap CI]; p: paired Wilcoxon vs the reference.",
           "% Needs \\usepackage{booktabs}.", ""]
    for ds in datasets:
        for k in sorted(stats.loc[stats["dataset"] == ds, "class"].unique()):
            name = class_names.get(ds, {}).get(int(k), str(k))
            unit = units.get(ds, "px")
            out += ["\\begin{table}[t]", "\\centering", "\\scriptsize",
                    f"\\caption{{{_tex(ds)}, class {k} ({_tex(name)}): mean $\\pm$ std [95\\% bootstrap CI]; "
                    f"$p$: paired Wilcoxon signed-rank test of {_tex(reference)} vs.\\ each variant; "
                    f"distances in {unit}.}}",
                    f"\\label{{tab:{re.sub(r'[^A-Za-z0-9]', '-', ds)}-class{k}}}",
                    "\\begin{tabular}{l" + "rr" * len(TABLE_METRICS) + "rr}", "\\toprule",
                    "Variant & " + " & ".join(f"{TABLE_NAMES[m]} & $p$" for m in TABLE_METRICS)
                    + " & $n$ & NaN \\\\", "\\midrule"]
            for row in _table_rows(stats, ds, int(k), variants):
                v = row["variant"]
                cells = [f"\\textbf{{{_tex(v)}}}" if v == reference else _tex(v)]
                for m in TABLE_METRICS:
                    r = row["stats"].loc[m]
                    p = "ref" if v == reference else format_p(r["p_value"]).replace("<", "$<$").replace("–", "--")
                    cells += [_cell(r, _digits(m), latex=True).replace("–", "--"), p]
                cells += [str(row["n"]), str(row["nan"])]
                out.append(" & ".join(cells) + " \\\\")
            out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(out)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """CSV with fixed float formatting and ``\\n`` line ends, atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format=FLOAT_FORMAT, na_rep="nan", lineterminator="\n")


# --------------------------------------------------------------------------- figures
def _load_checkpoint(path: Path) -> dict:
    """A training checkpoint, loaded with ``weights_only=True`` (no code runs)."""
    try:
        from .checkpoint import load_checkpoint
    except ImportError:  # checkpoint helpers absent: same safe load, without the friendly checks
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)
    return load_checkpoint(path)


def make_figures(
    df: pd.DataFrame,
    pooled: pd.DataFrame,
    config: dict,
    results: Path,
    data_dir: Path,
    out: Path,
    datasets: list[str],
    variants: list[str],
    class_names: dict[str, dict[int, str]],
    units: dict[str, str],
) -> tuple[list[Path], list[str]]:
    """Draw every figure it has inputs for. Returns ``(written files, notes on what was skipped)``."""
    from . import figures

    fig_dir = out / "figures"
    written: list[Path] = []
    notes: list[str] = []
    report = config.get("report", {})
    n_cases = int(report.get("qualitative_cases", 4))
    n_queries = int(report.get("attention_queries", 3))
    for ds in datasets:
        ds_cfg = config["datasets"].get(ds, {})
        sub = pooled[pooled["dataset"] == ds]
        ds_variants = [v for v in variants if v in set(sub["variant"])]
        written.append(figures.boxplots(sub, ds, ds_variants, class_names.get(ds, {}), units.get(ds, "px"),
                                        fig_dir / f"{ds}_boxplots.png"))
        seeds = {v: sorted(df.loc[(df["dataset"] == ds) & (df["variant"] == v), "seed"].unique())
                 for v in ds_variants}
        # learning curves
        histories = {}
        for v in ds_variants:
            for s in seeds[v]:
                h = run_dir(results, ds, v, int(s)) / "history.csv"
                if h.is_file():
                    histories[(v, int(s))] = pd.read_csv(h)
        if histories:
            written.append(figures.learning_curves(histories, ds, fig_dir / f"{ds}_learning_curves.png"))
        else:
            notes.append(f"{ds}: no history.csv found, learning curves skipped")
        # qualitative grid, first seed of each variant
        prepared = data_dir / "prepared" / ds
        labels_dir, images_dir = prepared / "test" / "labels", prepared / "test" / "images"
        pred_dirs = {v: run_dir(results, ds, v, int(seeds[v][0])) / "predictions" for v in ds_variants}
        cases = _qualitative_cases(df, ds, ds_variants, n_cases)
        scores = {}  # (variant, case) -> Dice of the shown seed, mean over classes
        first = df[(df["dataset"] == ds)]
        for v in ds_variants:
            fv = first[(first["variant"] == v) & (first["seed"] == seeds[v][0])]
            scores.update({(v, c): float(g["dice"].mean()) for c, g in fv.groupby("case")})
        if labels_dir.is_dir() and images_dir.is_dir():
            path = figures.qualitative_grid(cases, images_dir, labels_dir, pred_dirs, ds,
                                            int(ds_cfg.get("slice_axis", 2)), fig_dir / f"{ds}_qualitative.png",
                                            scores)
            if path is None:
                notes.append(f"{ds}: no test case has image, reference and all predictions; qualitative grid skipped")
            else:
                written.append(path)
        else:
            notes.append(f"{ds}: {images_dir} or {labels_dir} missing; qualitative grid skipped")
        # attention maps
        path, why = _attention(ds, ds_variants, config.get("reference_variant", "joint"), seeds, cases,
                               images_dir, results, n_queries, fig_dir / f"{ds}_attention.png")
        notes += why
        if path is not None:
            written.append(path)
    return written, notes


def _qualitative_cases(df: pd.DataFrame, ds: str, variants: list[str], n: int) -> list[str]:
    """``n`` test cases spread evenly over the sorted case ids every variant has."""
    sub = df[df["dataset"] == ds]
    common = sorted(set.intersection(*(set(sub.loc[sub["variant"] == v, "case"]) for v in variants)))
    if len(common) <= n:
        return common
    return [common[i] for i in np.linspace(0, len(common) - 1, n).round().astype(int)]


def _attention(ds: str, variants: list[str], reference: str, seeds: dict, cases: list[str], images_dir: Path,
               results: Path, n_queries: int, path: Path) -> tuple[Path | None, list[str]]:
    from . import figures

    notes: list[str] = []
    try:
        from .data.preprocess import preprocess_file
        from .models import build_model
    except ImportError as exc:
        return None, [f"{ds}: attention maps skipped ({exc})"]
    image = next((p for c in cases if (p := figures.find_image(images_dir, c)) is not None), None)
    if image is None:
        return None, [f"{ds}: no test image found in {images_dir}; attention maps skipped"]
    loaded = []  # (variant, model, checkpoint)
    for v in variants:
        ckpt_dir = run_dir(results, ds, v, int(seeds[v][0])) / "checkpoints"
        ckpt_path = next((p for p in (ckpt_dir / "final.pt", ckpt_dir / "best.pt") if p.is_file()), None)
        if ckpt_path is None:
            notes.append(f"{ds}/{v}: no checkpoints/final.pt or best.pt; attention map skipped")
            continue
        ckpt = _load_checkpoint(ckpt_path)
        model = build_model(**ckpt["model_kwargs"])
        if getattr(model, "attention", None) is None:
            continue  # 'none' and plain baselines have no map to show
        model.load_state_dict(ckpt["model"])
        model.eval()
        loaded.append((v, model, ckpt))
    if not loaded:
        return None, notes + [f"{ds}: no variant with attention has a checkpoint; attention figure skipped"]
    # one input and one set of query points for every variant, chosen with the reference
    # variant's model (its predicted structure), so the panels are comparable
    chooser = next((e for e in loaded if e[0] == reference), loaded[0])
    array, _ = preprocess_file(image, chooser[2]["preprocess"])
    size = tuple(chooser[2]["model_kwargs"].get("input_size", (64, 64)))
    x, fg = figures.attention_inputs(chooser[1], array, size)
    entries = [{"variant": v, "model": m, "x": x, "foreground": fg} for v, m, _ in loaded]
    return figures.attention_figure(entries, f"{ds} ({image.name})", n_queries, path), notes


# --------------------------------------------------------------------------- report
def _provenance(config: dict, config_path: str | None, data_dir: Path, datasets: list[str]) -> list[str]:
    lines = []
    if config_path and Path(config_path).is_file():
        lines.append(f"- config: `{config_path}` (sha256 `{sha256_file(config_path)}`)")
    try:
        from . import tracking

        commit = tracking.git_commit()
        versions = tracking.package_versions()
    except Exception:  # noqa: BLE001 - provenance is best effort, never a reason to fail
        commit, versions = "unknown", {}
    lines.append(f"- code commit: `{commit}`")
    if versions:
        lines.append("- packages: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    for ds in datasets:
        manifest = data_dir / "prepared" / ds / "manifest.json"
        digest = sha256_file(manifest) if manifest.is_file() else "unknown (no prepared manifest)"
        lines.append(f"- data `{ds}`: sha256 of `{manifest}` `{digest}`")
    if Path("dvc.lock").is_file():
        lines.append(f"- dvc.lock sha256 `{sha256_file('dvc.lock')}`")
    return lines


def report_markdown(config: dict, config_path: str | None, data_dir: Path, out: Path, datasets: list[str],
                    tables_md: str, figure_paths: list[Path], notes: list[str]) -> str:
    """``report.md``: what was run, links to tables and figures, provenance."""
    lines = [f"# jointseg report: study `{config.get('study', '?')}`", "",
             "Reconstruction of Zhang, Dong, Li, *Joint Attention for Medical Image Segmentation* (ISBI 2022); "
             "not the authors' code.", "",
             "Metric policy: Dice, IoU, sensitivity, specificity, precision from the confusion counts per "
             "foreground class; HD95 (max of the two directed 95th percentiles) and ASSD (mean of both "
             "directions' surface distances) by MONAI, in mm for NIfTI, px for 2-D images. Both masks empty: "
             "Dice = IoU = 1, distances 0; one empty: Dice = IoU = 0, distances NaN (counted, excluded from "
             "distance means).", "",
             "## Files", "",
             "- [summary.csv](summary.csv): per data set, variant, seed and class",
             "- [stats.csv](stats.csv): pooled over seeds, bootstrap CIs, Wilcoxon tests",
             "- [summary.md](summary.md), [summary.tex](summary.tex): tables", ""]
    lines += ["## Figures", ""]
    for ds in datasets:
        for p in figure_paths:
            if p.name.startswith(f"{ds}_"):
                rel = p.relative_to(out).as_posix()
                lines.append(f"![{p.stem}]({rel})")
                lines.append("")
    if notes:
        lines += ["## Not produced", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Provenance", ""] + _provenance(config, config_path, data_dir, datasets) + [""]
    body = tables_md.split("\n", 1)[1] if tables_md.startswith("# ") else tables_md
    lines += ["## Tables", body]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- driver
def aggregate(
    config: dict,
    results: Path,
    out: Path,
    data_dir: Path,
    metrics_files: Sequence[str | Path] | None = None,
    figures: bool = True,
    config_path: str | None = None,
) -> list[Path]:
    """Write every summary output; returns the files written."""
    if metrics_files:
        runs = [(*parse_metrics_path(Path(p)), Path(p)) for p in metrics_files]
    else:
        runs = expected_runs(config, results)
    df = collect_metrics(runs)
    datasets, variants = _orders(df, config)
    reference = config.get("reference_variant", "joint")
    if reference not in variants:
        print(f"jointseg aggregate: warning: reference variant '{reference}' has no runs; no Wilcoxon tests",
              file=sys.stderr)
    class_names = {ds: {int(k): v for k, v in config["datasets"].get(ds, {}).get("labels", {}).items()}
                   for ds in datasets}
    units = {ds: ("mm" if config["datasets"].get(ds, {}).get("format") == "msd" else "px") for ds in datasets}
    n_seeds = {ds: int(df.loc[df["dataset"] == ds, "seed"].nunique()) for ds in datasets}
    n_boot = int(config.get("report", {}).get("bootstrap", 2000))

    summary = seed_summary(df, datasets, variants)
    pooled = pooled_cases(df)
    stats = compute_stats(pooled, datasets, variants, reference, n_boot)
    tables_md = markdown_tables(stats, datasets, variants, reference, class_names, units, n_seeds)

    written = [out / "summary.csv", out / "stats.csv", out / "summary.md", out / "summary.tex"]
    write_csv(summary, written[0])
    write_csv(stats, written[1])
    atomic_write_text(written[2], tables_md + "\n")
    atomic_write_text(written[3], latex_tables(stats, datasets, variants, reference, class_names, units))
    figure_paths, notes = [], []
    if figures:
        figure_paths, notes = make_figures(df, pooled, config, results, data_dir, out, datasets, variants,
                                           class_names, units)
    for note in notes:
        print(f"jointseg aggregate: note: {note}", file=sys.stderr)
    report = out / "report.md"
    atomic_write_text(report, report_markdown(config, config_path, data_dir, out, datasets, tables_md,
                                              figure_paths, notes))
    return written + figure_paths + [report]


def log_to_mlflow(out: Path, config: dict, results: Path) -> None:
    """Log the summary folder to the MLflow parent run if tracking is set up; warn on failure."""
    try:
        from . import tracking
    except ImportError:
        return
    log = getattr(tracking, "log_parent_artifacts", None)
    if log is None:
        return
    try:
        log([out], config=config, results_dir=results)
    except Exception as exc:  # noqa: BLE001 - the files on disk are the result; MLflow is a view
        print(f"jointseg aggregate: warning: could not log {out} to MLflow ({type(exc).__name__}: {exc})",
              file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="study config YAML")
    parser.add_argument("--results", default=None, help="results folder (default: the config's results_dir)")
    parser.add_argument("--data-dir", default=None, help="data folder with prepared/ (default: the config's data_dir)")
    parser.add_argument("--out", default=None, help="output folder (default: <results>/summary)")
    parser.add_argument("--metrics", nargs="+", default=None, metavar="FILE",
                        help="explicit metrics files <dataset>/<variant>/seed<k>/metrics.csv "
                             "(default: every data set x variant/baseline x seed of the config)")
    parser.add_argument("--no-figures", action="store_true", help="tables and statistics only")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the summary to the MLflow parent run")


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    results = Path(args.results or config["results_dir"])
    data_dir = Path(args.data_dir or config["data_dir"])
    out = Path(args.out) if args.out else results / "summary"
    written = aggregate(config, results, out, data_dir, args.metrics, figures=not args.no_figures,
                        config_path=args.config)
    if not args.no_mlflow:
        log_to_mlflow(out, config, results)
    print(f"jointseg aggregate: wrote {len(written)} files to {out}")
    return 0

