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
        "jointseg evaluate --pred {input.predictions} --ref {params.references}"
        " --manifest {input.manifest} --out {output} --quiet > {log} 2>&1"
