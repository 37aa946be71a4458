# Where and with what jobs run: the interpreter the rules call the package with,
# the jobs that stay on this machine, GPUs (probed here, pinned per job by
# workflow/scripts/gpu_slot.py), threads and scheduling hints.
import os
import shlex

from jointseg.gpus import visible_devices

REPORT_DIR = Path(workflow.basedir) / "workflow" / "report"
SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"
PYTHON = shlex.quote(sys.executable)
# Rules call the package through the interpreter that runs Snakemake, so
# PATH does not matter (a bare `jointseg` may be missing or another install).
JOINTSEG = f"{PYTHON} -m jointseg"


# Tiny or network-bound jobs run in the main process's machine, never as
# cluster jobs (compute nodes often have no internet; a Slurm job per
# run_config.json would wait in the queue longer than it runs).
localrules:
    all,
    raw,
    download,
    resolve,
    headline_metrics,
    provenance,
    test_metrics_to_mlflow,


# A run on this machine (not a cluster run, nor one of its jobs re-reading this file).
# `workflow.local_exec` cannot tell: the executor is set after this file is read, so
# it is always True here. A cluster executor keeps `--jobs` as its job limit
# (`nodes`); a local run turns `--jobs` into `--cores`, leaving `nodes` unset.
LOCAL_RUN = workflow.is_main_process and workflow.resource_settings.nodes is None
# The GPUs this run may use: CUDA_VISIBLE_DEVICES (or a Slurm allocation) narrows the machine's.
LOCAL_GPUS = visible_devices() if LOCAL_RUN else []


def _gpus_per_job() -> int:
    """The config's gpus_per_job; null: 1, or 0 in a local run on a machine without a GPU.

    On a CPU-only machine a `gpu` resource of 1 per job would make a `gpu` limit
    run the training and inference jobs one at a time for no reason.
    """
    if config["gpus_per_job"] is not None:
        return int(config["gpus_per_job"])
    return 0 if LOCAL_RUN and not LOCAL_GPUS else 1


GPUS = _gpus_per_job()

# A local run's `gpu` limit is the number of devices it may use (one job per
# device; gpu_slot.py pins each job to its own), unless `--resources gpu=N` sets
# it. Neither a profile nor this file limits a cluster run: each job asks the
# scheduler for its own GPUs, so a login node's count must not cap them.
if LOCAL_RUN and GPUS and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", max(len(LOCAL_GPUS), GPUS))

_PAPER = config["model"]["preset"] == "paper"
# Scheduling hints (Slurm requests); a profile's set-resources overrides them.
TRAIN_RESOURCES = dict(
    gpu=GPUS,
    mem_mb=32000 if _PAPER else 4000,
    runtime=24 * 60 if _PAPER else 60,
)
PREDICT_RESOURCES = dict(
    gpu=GPUS,
    mem_mb=16000 if _PAPER else 2000,
    runtime=4 * 60 if _PAPER else 30,
)
TRAIN_THREADS = int(config["train"].get("threads") or 8)  # scaled down to --cores

# Every train and predict job runs through gpu_slot.py with its `gpu` resource
# (`--gpus {resources.gpu}`): Snakemake counts GPUs but does not pin devices, and
# the wrapper decides at run time whether and where to pin. The command text and
# this param are the same on every machine (resources are no rerun trigger), so
# moving a study between a CPU-only and a GPU machine reruns nothing. Relative to
# the working directory: an absolute path would make a moved project rerun.
GPU_SLOT = f"{PYTHON} {shlex.quote(os.path.relpath(SCRIPTS / 'gpu_slot.py'))}"
