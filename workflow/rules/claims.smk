# The paper's claims: attention statistics per run (locality of the maps over
# test queries), then one job that pools them with every run's test metrics into
# attention_stats.csv, balance.csv and the claims table (docs/science.md, "Claims").

# Variants with an attention block; a block without positional maps writes a
# header-only table (and a note), never an error.
ATTENTION_RUNS = [v for v in config["variants"] if v != "none"]
ATTENTION_STATS = config["report"]["attention_stats"]

CLAIMS_FILES = [
    summary_file("claims.csv"),
    summary_file("claims_tests.csv"),
    summary_file("claims.md"),
    summary_file("claims.html"),
    summary_file("balance.csv"),
    summary_file("attention_stats.csv"),
    summary_file("attention_stats.png"),
]
# Appended to report.md by the aggregate rule.
CLAIMS_SECTIONS = [summary_file("claims.md")]


rule attention_stats:
    input:
        checkpoint=EVAL_CHECKPOINT,
        manifest=prepared_input("manifest.json"),
    output:
        run_file("attention_stats.csv"),
    log:
        "logs/attention_stats/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/attention_stats/{dataset}/{variant}/seed{seed}.tsv"
    conda:
        "../envs/jointseg.yaml"
    threads: TRAIN_THREADS
    resources:
        **PREDICT_RESOURCES,
    params:
        jointseg=JOINTSEG,
        prepared=lambda wc, input: os.path.dirname(input.manifest),
        options=" ".join(
            f"--{key.replace('_', '-')} {value}"
            for key, value in sorted(ATTENTION_STATS.items())
            if value is not None
        ),
        gpu_slot=GPU_SLOT,
    shell:
        "{params.gpu_slot} --gpus {resources.gpu} -- {params.jointseg} attention-stats --checkpoint {input.checkpoint}"
        " --prepared {params.prepared} --out {output} {params.options} > {log} 2>&1"


rule claims:
    input:
        metrics=all_runs(run_file("metrics.csv")),
        attention=expand(
            run_file("attention_stats.csv"),
            dataset=DATASETS,
            variant=ATTENTION_RUNS,
            seed=SEEDS,
        ),
    output:
        claims=report(
            summary_file("claims.csv"),
            caption=str(REPORT_DIR / "claims.rst"),
            category="Claims",
            labels={"table": "claims.csv: verdict per claim (download)"},
        ),
        tests=summary_file("claims_tests.csv"),
        markdown=summary_file("claims.md"),
        html=report(
            summary_file("claims.html"),
            caption=str(REPORT_DIR / "claims.rst"),
            category="Claims",
            labels={"table": "claims, attention statistics, balance, tests"},
        ),
        balance=summary_file("balance.csv"),
        attention=report(
            summary_file("attention_stats.csv"),
            caption=str(REPORT_DIR / "attention_stats.rst"),
            category="Claims",
            labels={"table": "attention_stats.csv: locality per variant (download)"},
        ),
        figure=report(
            summary_file("attention_stats.png"),
            caption=str(REPORT_DIR / "attention_stats.rst"),
            category="Claims",
            labels={"table": "attention statistics (figure)"},
        ),
    log:
        "logs/claims/claims.log",
    benchmark:
        "benchmarks/claims/claims.tsv"
    conda:
        "../envs/jointseg.yaml"
    params:
        jointseg=JOINTSEG,
        config=EFFECTIVE_CONFIG,
        out=lambda wc, output: os.path.dirname(output.claims),
        # Summary-only settings: changing them re-decides the claims without retraining.
        settings=settings_json("report", "variants", "baselines", "seeds"),
    shell:
        "{params.jointseg} claims --config {params.config} --out {params.out}"
        " --metrics {input.metrics} --attention-stats {input.attention} > {log} 2>&1"
