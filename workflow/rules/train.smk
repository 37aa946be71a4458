# Training and inference: one job per (data set, variant, seed).


rule resolve:
    """The complete settings of one run, as the train rule's input.

    The params hold this run's resolved settings only, so editing one variant's
    settings (variant_overrides, or a data set's model/train) changes the params
    of that variant's resolve jobs alone: Snakemake's params trigger reruns them,
    the new run_config.json reruns their chain, and nothing else reruns.
    """
    output:
        run_file("run_config.json"),
    log:
        "logs/resolve/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/resolve/{dataset}/{variant}/seed{seed}.tsv"
    conda:
        "../envs/jointseg.yaml"
    params:
        jointseg=JOINTSEG,
        config=EFFECTIVE_CONFIG,
        settings=run_settings,
        # the folder the train rule's inputs are in (it is in the settings above too)
        prepared=lambda wc: PREPARED[wc.dataset],
    shell:
        "{params.jointseg} resolve --config {params.config} --dataset {wildcards.dataset}"
        " --variant {wildcards.variant} --seed {wildcards.seed} --prepared {params.prepared}"
        " --out {output} > {log} 2>&1"


rule train:
    input:
        run_config=run_file("run_config.json"),
        manifest=prepared_input("manifest.json"),
        splits=prepared_input("splits.json"),
    output:
        # checkpoints/latest.pt is deliberately not an output: Snakemake would
        # delete it before a rerun, and it is what an interrupted job resumes from.
        final=run_file("checkpoints/final.pt"),
        best=run_file("checkpoints/best.pt"),
        history=run_file("history.csv"),
    log:
        "logs/train/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}/{variant}/seed{seed}.tsv"
    conda:
        "../envs/jointseg.yaml"
    threads: TRAIN_THREADS
    resources:
        **TRAIN_RESOURCES,
    params:
        jointseg=JOINTSEG,
        out=lambda wc, output: os.path.dirname(output.history),
        gpu_slot=GPU_SLOT,
    shell:
        "{params.gpu_slot} --gpus {resources.gpu} -- {params.jointseg} train --run-config {input.run_config}"
        " --out {params.out} > {log} 2>&1"


rule predict:
    input:
        checkpoint=EVAL_CHECKPOINT,
        manifest=prepared_input("manifest.json"),
    output:
        directory(run_file("predictions")),
    log:
        "logs/predict/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/predict/{dataset}/{variant}/seed{seed}.tsv"
    conda:
        "../envs/jointseg.yaml"
    threads: TRAIN_THREADS
    resources:
        **PREDICT_RESOURCES,
    params:
        jointseg=JOINTSEG,
        images=prepared_input("test/images"),
        options=lambda wc: " ".join(
            (["--probabilities"] if config["predict"]["probabilities"] else [])
            + ["--overlap", str(config["predict"]["overlap"])]
        ),
        gpu_slot=GPU_SLOT,
    shell:
        "{params.gpu_slot} --gpus {resources.gpu} -- {params.jointseg} predict --checkpoint {input.checkpoint}"
        " --input {params.images} --out {output} {params.options} > {log} 2>&1"
