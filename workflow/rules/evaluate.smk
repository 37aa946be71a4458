# Evaluation: per-case, per-class metrics of each run's test predictions.


rule evaluate:
    input:
        predictions=RUN_DIR + "/predictions",
        manifest=PREPARED + "/manifest.json",
    output:
        RUN_DIR + "/metrics.csv",
    params:
        references=PREPARED + "/test/labels",
    log:
        "logs/evaluate/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}/{variant}/seed{seed}.tsv"
    shell:
        # The run's identity travels in the metrics' first columns, never in paths.
        "{JOINTSEG} evaluate --pred {input.predictions} --ref {params.references}"
        " --manifest {input.manifest} --dataset {wildcards.dataset} --variant {wildcards.variant}"
        " --seed {wildcards.seed} --out {output} --quiet > {log} 2>&1"
