# jointseg study workflow: download -> prepare -> train -> predict -> evaluate
# -> aggregate over data set x variant x seed (see docs/pipeline.md).
#
#   snakemake --cores all --resources gpu=1                        # the demo study
#   snakemake --configfile config/paper.yaml --profile workflow/profiles/slurm
#
# Every rule is a thin call of the `jointseg` CLI; the logic lives in the package.
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


include: "workflow/rules/config.smk"
include: "workflow/rules/layout.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        SUMMARY_FILES,
        CLAIMS_FILES,
        METRICS_JSON,
        PROVENANCE_JSON,
        pipeline_file("mlflow_test_metrics.done"),
