# Summary over all runs: tables, statistics, figures (the HTML report's
# content), headline metrics for `dvc metrics`, and a provenance record.

SUMMARY_FILES = [
    SUMMARY + "/summary.csv",
    SUMMARY + "/summary.md",
    SUMMARY + "/summary.tex",
    SUMMARY + "/stats.csv",
    SUMMARY + "/report.md",
]
METRICS_JSON = SUMMARY + "/metrics.json"
PROVENANCE_JSON = SUMMARY + "/provenance.json"


rule aggregate:
    input:
        metrics=all_runs(RUN_DIR + "/metrics.csv"),
        history=all_runs(RUN_DIR + "/history.csv"),
        run_configs=all_runs(RUN_DIR + "/run_config.json"),
        # qualitative and attention figures use the models and the test images
        checkpoints=all_runs(RUN_DIR + "/checkpoints/final.pt"),
        manifests=expand(PREPARED + "/manifest.json", dataset=DATASETS),
    output:
        summary=report(
            SUMMARY + "/summary.csv",
            caption=str(REPORT_DIR / "summary.rst"),
            category="Tables",
            labels={"table": "summary (mean, 95% CI per data set x variant)"},
        ),
        markdown=SUMMARY + "/summary.md",
        latex=SUMMARY + "/summary.tex",
        stats=report(
            SUMMARY + "/stats.csv",
            caption=str(REPORT_DIR / "stats.rst"),
            category="Tables",
            labels={"table": "paired tests against the reference variant"},
        ),
        report_md=SUMMARY + "/report.md",
        figures=report(
            directory(SUMMARY + "/figures"),
            patterns=["{name}.png"],
            caption=str(REPORT_DIR / "figures.rst"),
            category="Figures",
            labels={"figure": "{name}"},
        ),
    params:
        results=RESULTS,
        data=DATA,
        out=SUMMARY,
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
        "jointseg aggregate --config {EFFECTIVE_CONFIG} --results {params.results}"
        " --data-dir {params.data} --out {params.out} --metrics {input.metrics}"
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
    params:
        results=RESULTS,
    log:
        "logs/aggregate/headline_metrics.log",
    benchmark:
        "benchmarks/headline_metrics/headline_metrics.tsv"
    shell:
        "{PYTHON} {SCRIPTS}/headline_metrics.py --results {params.results}"
        " --out {output} {input.metrics} > {log} 2>&1"


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
        "{PYTHON} {SCRIPTS}/provenance.py --config {EFFECTIVE_CONFIG} --out {output}"
        " --raw {input.raw} --manifests {input.manifests} --run-configs {input.run_configs}"
        " > {log} 2>&1"
