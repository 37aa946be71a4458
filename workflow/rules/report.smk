# Summary over all runs: tables, statistics, figures (the HTML report's
# content), headline metrics for `dvc metrics`, and a provenance record.

SUMMARY_FILES = [
    summary_file("summary.csv"),
    summary_file("summary.md"),
    summary_file("summary.tex"),
    summary_file("stats.csv"),
    summary_file("report.md"),
    summary_file("summary.html"),
    summary_file("report.html"),
]
METRICS_JSON = summary_file("metrics.json")
PROVENANCE_JSON = summary_file("provenance.json")


# The figures show each variant's first seed: its checkpoint and predictions.
FIGURE_RUNS = dict(dataset=DATASETS, variant=RUNS, seed=SEEDS[:1])


rule aggregate:
    # Exactly what the job reads; each file says in its data which run it is
    # (metrics: dataset/variant/seed columns, run configs and checkpoints: their
    # settings, manifests: `dataset`). Lists given in the same expand order pair
    # up: history i with run config i, prediction folder i with checkpoint i.
    input:
        metrics=all_runs(run_file("metrics.csv")),
        run_configs=all_runs(run_file("run_config.json")),
        histories=all_runs(run_file("history.csv")),
        manifests=[prepared_path(ds, "manifest.json") for ds in DATASETS],
        checkpoints=expand(EVAL_CHECKPOINT, **FIGURE_RUNS),
        predictions=expand(run_file("predictions"), **FIGURE_RUNS),
        sections=CLAIMS_SECTIONS,  # claims.smk: appended to report.md
    # The Snakemake report shows HTML and images inline, any other file as a
    # download link: the tables people read are the two HTML pages; the CSVs
    # are there for download.
    output:
        summary=report(
            summary_file("summary.csv"),
            caption=str(REPORT_DIR / "summary.rst"),
            category="Tables",
            labels={"table": "summary.csv: per-seed means (download)"},
        ),
        markdown=summary_file("summary.md"),
        latex=summary_file("summary.tex"),
        stats=report(
            summary_file("stats.csv"),
            caption=str(REPORT_DIR / "stats.rst"),
            category="Tables",
            labels={"table": "stats.csv: CIs and tests (download)"},
        ),
        report_md=summary_file("report.md"),
        summary_html=report(
            summary_file("summary.html"),
            caption=str(REPORT_DIR / "summary_html.rst"),
            category="Tables",
            labels={"table": "summary: mean ± std [95% CI], p (Holm), recipe"},
        ),
        report_html=report(
            summary_file("report.html"),
            caption=str(REPORT_DIR / "report_html.rst"),
            category="Tables",
            labels={"table": "report: metric policy, recipe, figures, provenance"},
        ),
        figures=report(
            directory(summary_file("figures")),
            patterns=["{name}.png"],
            caption=str(REPORT_DIR / "figures.rst"),
            category="Figures",
            labels={"figure": "{name}"},
        ),
    log:
        "logs/aggregate/aggregate.log",
    benchmark:
        "benchmarks/aggregate/aggregate.tsv"
    conda:
        "../envs/jointseg.yaml"
    params:
        jointseg=JOINTSEG,
        config=EFFECTIVE_CONFIG,
        out=lambda wc, output: os.path.dirname(output.summary),
        # written by `prepare` next to the manifest (not rule outputs), one per manifest
        test_images=[prepared_path(ds, "test/images") for ds in DATASETS],
        test_labels=[prepared_path(ds, "test/labels") for ds in DATASETS],
        # Summary-only settings: changing them re-aggregates without retraining.
        settings=settings_json(
            "report", "reference_variant", "variants", "baselines", "seeds"
        ),
    shell:
        # --no-mlflow: onsuccess uploads the whole summary (with metrics.json
        # and provenance.json) to the parent run once.
        "{params.jointseg} aggregate --config {params.config} --out {params.out}"
        " --metrics {input.metrics} --run-configs {input.run_configs}"
        " --histories {input.histories} --manifests {input.manifests}"
        " --test-images {params.test_images} --test-labels {params.test_labels}"
        " --checkpoints {input.checkpoints} --predictions {input.predictions}"
        " --sections {input.sections} --no-mlflow > {log} 2>&1"


rule headline_metrics:
    """Means over cases, classes and seeds per data set x variant, for `dvc metrics`."""
    input:
        metrics=all_runs(run_file("metrics.csv")),
    output:
        report(
            METRICS_JSON,
            caption=str(REPORT_DIR / "metrics.rst"),
            category="Tables",
            labels={"table": "headline means (metrics.json)"},
        ),
    log:
        "logs/aggregate/headline_metrics.log",
    benchmark:
        "benchmarks/headline_metrics/headline_metrics.tsv"
    conda:
        "../envs/jointseg.yaml"
    params:
        jointseg=JOINTSEG,
    shell:
        "{params.jointseg} headline-metrics --out {output} --metrics {input.metrics} > {log} 2>&1"


rule provenance:
    """Code commit, data hashes and the resolved settings of every run."""
    input:
        raw=expand(raw_file(".complete.json"), dataset=DATASETS),
        manifests=[prepared_path(ds, "manifest.json") for ds in DATASETS],
        run_configs=all_runs(run_file("run_config.json")),
    output:
        report(
            PROVENANCE_JSON,
            caption=str(REPORT_DIR / "provenance.rst"),
            category="Provenance",
        ),
    log:
        "logs/aggregate/provenance.log",
    benchmark:
        "benchmarks/provenance/provenance.tsv"
    conda:
        "../envs/jointseg.yaml"
    params:
        jointseg=JOINTSEG,
        config=EFFECTIVE_CONFIG,
    shell:
        "{params.jointseg} provenance --config {params.config} --out {output}"
        " --raw {input.raw} --manifests {input.manifests} --run-configs {input.run_configs}"
        " > {log} 2>&1"
