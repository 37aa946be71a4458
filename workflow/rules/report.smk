# Summary over all runs: tables, statistics, figures (the HTML report's
# content), headline metrics for `dvc metrics`, and a provenance record.

SUMMARY_FILES = [
    SUMMARY + "/summary.csv",
    SUMMARY + "/summary.md",
    SUMMARY + "/summary.tex",
    SUMMARY + "/stats.csv",
    SUMMARY + "/report.md",
    SUMMARY + "/summary.html",
    SUMMARY + "/report.html",
]
METRICS_JSON = SUMMARY + "/metrics.json"
PROVENANCE_JSON = SUMMARY + "/provenance.json"


# The figures show each variant's first seed: its checkpoint and predictions.
FIGURE_RUNS = dict(dataset=DATASETS, variant=RUNS, seed=SEEDS[:1])


rule aggregate:
    # Exactly what the job reads; each file says in its data which run it is
    # (metrics: dataset/variant/seed columns, run configs and checkpoints: their
    # settings, manifests: `dataset`). Lists given in the same expand order pair
    # up: history i with run config i, prediction folder i with checkpoint i.
    input:
        metrics=all_runs(RUN_DIR + "/metrics.csv"),
        run_configs=all_runs(RUN_DIR + "/run_config.json"),
        histories=all_runs(RUN_DIR + "/history.csv"),
        manifests=expand(PREPARED + "/manifest.json", dataset=DATASETS),
        checkpoints=expand(EVAL_CHECKPOINT, **FIGURE_RUNS),
        predictions=expand(RUN_DIR + "/predictions", **FIGURE_RUNS),
    # The Snakemake report shows HTML and images inline, any other file as a
    # download link: the tables people read are the two HTML pages; the CSVs
    # are there for download.
    output:
        summary=report(
            SUMMARY + "/summary.csv",
            caption=str(REPORT_DIR / "summary.rst"),
            category="Tables",
            labels={"table": "summary.csv: per-seed means (download)"},
        ),
        markdown=SUMMARY + "/summary.md",
        latex=SUMMARY + "/summary.tex",
        stats=report(
            SUMMARY + "/stats.csv",
            caption=str(REPORT_DIR / "stats.rst"),
            category="Tables",
            labels={"table": "stats.csv: CIs and tests (download)"},
        ),
        report_md=SUMMARY + "/report.md",
        summary_html=report(
            SUMMARY + "/summary.html",
            caption=str(REPORT_DIR / "summary_html.rst"),
            category="Tables",
            labels={"table": "summary: mean ± std [95% CI], p (Holm), recipe"},
        ),
        report_html=report(
            SUMMARY + "/report.html",
            caption=str(REPORT_DIR / "report_html.rst"),
            category="Tables",
            labels={"table": "report: metric policy, recipe, figures, provenance"},
        ),
        figures=report(
            directory(SUMMARY + "/figures"),
            patterns=["{name}.png"],
            caption=str(REPORT_DIR / "figures.rst"),
            category="Figures",
            labels={"figure": "{name}"},
        ),
    params:
        out=SUMMARY,
        # written by `prepare` next to the manifest (not rule outputs), one per manifest
        test_images=expand(PREPARED + "/test/images", dataset=DATASETS),
        test_labels=expand(PREPARED + "/test/labels", dataset=DATASETS),
        # Summary-only settings: changing them re-aggregates without retraining.
        settings=lambda wc: json.dumps(
            {k: config[k] for k in ("report", "reference_variant", "variants", "baselines", "seeds")},
            sort_keys=True,
        ),
    log:
        "logs/aggregate/aggregate.log",
    benchmark:
        "benchmarks/aggregate/aggregate.tsv"
    shell:
        # --no-mlflow: onsuccess uploads the whole summary (with metrics.json
        # and provenance.json) to the parent run once.
        "{JOINTSEG} aggregate --config {EFFECTIVE_CONFIG} --out {params.out}"
        " --metrics {input.metrics} --run-configs {input.run_configs}"
        " --histories {input.histories} --manifests {input.manifests}"
        " --test-images {params.test_images} --test-labels {params.test_labels}"
        " --checkpoints {input.checkpoints} --predictions {input.predictions}"
        " --no-mlflow > {log} 2>&1"


rule headline_metrics:
    """Means over cases, classes and seeds per data set x variant, for `dvc metrics`."""
    input:
        metrics=all_runs(RUN_DIR + "/metrics.csv"),
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
    shell:
        "{JOINTSEG} headline-metrics --out {output} --metrics {input.metrics} > {log} 2>&1"


rule provenance:
    """Code commit, data hashes and the resolved settings of every run."""
    input:
        raw=expand(RAW + "/.complete.json", dataset=DATASETS),
        manifests=expand(PREPARED + "/manifest.json", dataset=DATASETS),
        run_configs=all_runs(RUN_DIR + "/run_config.json"),
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
    shell:
        "{JOINTSEG} provenance --config {EFFECTIVE_CONFIG} --out {output}"
        " --raw {input.raw} --manifests {input.manifests} --run-configs {input.run_configs}"
        " > {log} 2>&1"
