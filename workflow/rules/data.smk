# Data: fetch each data set's archives (checksums verified against the
# committed lock file) and convert them into arrays + manifest + splits.


rule download:
    output:
        # download.py writes this marker last: its presence means the folder is complete.
        RAW + "/.complete.json",
    params:
        # Changing a data set's sources (URL, checksum) re-fetches only that data set.
        sources=lambda wc: json.dumps(
            {
                "sources": config["datasets"][wc.dataset]["sources"],
                "lock_file": config["datasets"][wc.dataset]["lock_file"],
            },
            sort_keys=True,
        ),
        out=RAW,
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "benchmarks/download/{dataset}.tsv"
    shell:
        "{JOINTSEG} download {wildcards.dataset} --config {EFFECTIVE_CONFIG}"
        " --out {params.out} > {log} 2>&1"


rule raw:
    """Every data set's raw files (the DVC `download` stage's target)."""
    input:
        expand(RAW + "/.complete.json", dataset=DATASETS),


rule prepare:
    input:
        RAW + "/.complete.json",
    output:
        manifest=PREPARED + "/manifest.json",
        splits=PREPARED + "/splits.json",
    params:
        # Only what preprocessing depends on (not the data set's model/train overrides).
        settings=lambda wc: json.dumps(
            {
                k: v
                for k, v in config["datasets"][wc.dataset].items()
                if k not in ("model", "train", "description")
            },
            sort_keys=True,
        ),
        raw=RAW,
        out=PREPARED,
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "benchmarks/prepare/{dataset}.tsv"
    shell:
        "{JOINTSEG} prepare {wildcards.dataset} --config {EFFECTIVE_CONFIG}"
        " --raw {params.raw} --out {params.out} > {log} 2>&1"
