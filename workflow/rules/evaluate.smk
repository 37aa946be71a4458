# Evaluation: per-case, per-class metrics of each run's test predictions.


rule evaluate:
    input:
        predictions=run_file("predictions"),
        manifest=prepared_input("manifest.json"),
    output:
        run_file("metrics.csv"),
    log:
        "logs/evaluate/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}/{variant}/seed{seed}.tsv"
    conda:
        "../envs/jointseg.yaml"
    params:
        jointseg=JOINTSEG,
        references=prepared_input("test/labels"),
    shell:
        # The run's identity travels in the metrics' first columns, never in paths.
        "{params.jointseg} evaluate --pred {input.predictions} --ref {params.references}"
        " --manifest {input.manifest} --dataset {wildcards.dataset} --variant {wildcards.variant}"
        " --seed {wildcards.seed} --out {output} --quiet > {log} 2>&1"


rule test_metrics_to_mlflow:
    """Every run's test scores onto its MLflow child run (one process for the study):
    its rows of summary.csv, so that a child carries every score the summary has.

    MLflow is a view of the summary: a tracking failure is a warning (exit 0; an
    unreachable store fails the job, so that a rerun logs them), and the marker
    below only records that this set of files was offered.
    """
    input:
        metrics=all_runs(run_file("metrics.csv")),
        summary=summary_file("summary.csv"),
    output:
        pipeline_file("mlflow_test_metrics.done"),
    log:
        "logs/evaluate/test_metrics_to_mlflow.log",
    conda:
        "../envs/jointseg.yaml"
    params:
        jointseg=JOINTSEG,
        config=EFFECTIVE_CONFIG,
    shell:
        "{params.jointseg} track metrics --metrics {input.metrics} --summary {input.summary}"
        " --config {params.config} > {log} 2>&1 && touch {output}"
