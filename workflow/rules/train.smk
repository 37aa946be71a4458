# Training and inference: one job per (data set, variant, seed).


rule resolve:
    """The complete settings of one run, as the train rule's input.

    The params hold this run's resolved settings only, so editing one variant's
    settings (variant_overrides, or a data set's model/train) changes the params
    of that variant's resolve jobs alone: Snakemake's params trigger reruns them,
    the new run_config.json reruns their chain, and nothing else reruns.
    """
    output:
        RUN_DIR + "/run_config.json",
    params:
        settings=run_settings,
    log:
        "logs/resolve/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/resolve/{dataset}/{variant}/seed{seed}.tsv"
    shell:
        "{JOINTSEG} resolve --config {EFFECTIVE_CONFIG} --dataset {wildcards.dataset}"
        " --variant {wildcards.variant} --seed {wildcards.seed} --out {output} > {log} 2>&1"


rule train:
    input:
        run_config=RUN_DIR + "/run_config.json",
        manifest=PREPARED + "/manifest.json",
        splits=PREPARED + "/splits.json",
    output:
        # checkpoints/latest.pt is deliberately not an output: Snakemake would
        # delete it before a rerun, and it is what an interrupted job resumes from.
        final=RUN_DIR + "/checkpoints/final.pt",
        best=RUN_DIR + "/checkpoints/best.pt",
        history=RUN_DIR + "/history.csv",
    params:
        out=RUN_DIR,
        gpu_wrap=GPU_WRAP,
    threads: TRAIN_THREADS
    resources:
        **TRAIN_RESOURCES,
    log:
        "logs/train/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}/{variant}/seed{seed}.tsv"
    shell:
        "{params.gpu_wrap} {JOINTSEG} train --run-config {input.run_config}"
        " --out {params.out} > {log} 2>&1"


rule predict:
    input:
        checkpoint=EVAL_CHECKPOINT,
        manifest=PREPARED + "/manifest.json",
    output:
        directory(RUN_DIR + "/predictions"),
    params:
        images=PREPARED + "/test/images",
        options=lambda wc: " ".join(
            (["--probabilities"] if config["predict"]["probabilities"] else [])
            + ["--overlap", str(config["predict"]["overlap"])]
        ),
        gpu_wrap=GPU_WRAP,
    threads: TRAIN_THREADS
    resources:
        **PREDICT_RESOURCES,
    log:
        "logs/predict/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/predict/{dataset}/{variant}/seed{seed}.tsv"
    shell:
        "{params.gpu_wrap} {JOINTSEG} predict --checkpoint {input.checkpoint}"
        " --input {params.images} --out {output} {params.options} > {log} 2>&1"
