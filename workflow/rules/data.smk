# Data: fetch each data set's archives (checksums verified against the
# committed lock file) and convert them into arrays + manifest + splits.


rule download:
    output:
        # download.py writes this marker last: its presence means the folder is complete.
        raw_file(".complete.json"),
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "benchmarks/download/{dataset}.tsv"
    conda:
        "../envs/jointseg.yaml"
    params:
        jointseg=JOINTSEG,
        config=EFFECTIVE_CONFIG,
        # Changing a data set's sources (URL, checksum) re-fetches only that data set.
        sources=lambda wc: json.dumps(
            {
                "sources": config["datasets"][wc.dataset]["sources"],
                "lock_file": config["datasets"][wc.dataset]["lock_file"],
            },
            sort_keys=True,
        ),
        out=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "{params.jointseg} download {wildcards.dataset} --config {params.config}"
        " --out {params.out} > {log} 2>&1"


rule raw:
    """Every data set's raw files (the DVC `download` stage's target)."""
    input:
        expand(raw_file(".complete.json"), dataset=DATASETS),


# Output folder: data/prepared/<dataset>/<key>, the key a hash of the data set's
# preparation settings (jointseg.config.preparation_key), so changing them (size,
# split, labels, ...) prepares a new folder and leaves the old one to other studies.
rule prepare:
    input:
        raw_file(".complete.json"),
    output:
        manifest=prepared_file("manifest.json"),
        splits=prepared_file("splits.json"),
    log:
        "logs/prepare/{dataset}/{prep}.log",
    benchmark:
        "benchmarks/prepare/{dataset}/{prep}.tsv"
    conda:
        "../envs/jointseg.yaml"
    params:
        jointseg=JOINTSEG,
        config=EFFECTIVE_CONFIG,
        raw=lambda wc, input: os.path.dirname(input[0]),
        out=lambda wc, output: os.path.dirname(output.manifest),
    shell:
        "{params.jointseg} prepare {wildcards.dataset} --config {params.config}"
        " --raw {params.raw} --out {params.out} > {log} 2>&1"
