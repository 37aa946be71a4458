# Config loading, validation and the helpers every rule file uses.
#
# The config is validated against workflow/schemas/config.schema.yaml (the
# package's schema) before any job runs; a wrong key or type ends the run with
# one line naming the file, the key and the problem.
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from snakemake.utils import update_config

from jointseg import paths
from jointseg.config import preparation_key, resolve_run, run_names, validate_config
from jointseg.gpus import visible_devices
from jointseg.io_utils import UserError, atomic_write_text

DEFAULT_CONFIG = "config/config.yaml"

# `configfile:` would always load config/config.yaml and *merge* a
# --configfile into it (the paper study would inherit the demo data sets), so
# the default file is loaded only when none is given on the command line.
if not workflow.overwrite_configfiles:
    workflow.configfile(DEFAULT_CONFIG)


def _typed(value):
    """Give --config values their YAML types.

    Snakemake parses nested --config values with YAML's BaseLoader, so in
    `--config train='{iterations: 20}'` the 20 arrives as the string "20"; the
    schema (rightly) refuses it. Scalars that read as numbers, booleans or null
    get those types back.
    """
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if not isinstance(value, str):
        return value
    if any(c.isdigit() for c in value):  # words such as nan or inf stay strings
        for parse in (int, float):
            try:
                return parse(value)
            except ValueError:
                pass
    return {"true": True, "false": False, "null": None, "~": None}.get(
        value.lower(), value
    )


# Only the command line's --config entries are retyped: `overwrite_config`
# also holds the --configfile contents, which YAML already typed (retyping
# them would turn `study: "2024"` into an int).
_CLI_CONFIG = dict(workflow.config_settings.config)
if _CLI_CONFIG:
    update_config(config, _typed(_CLI_CONFIG))

CONFIG_SOURCE = ", ".join(
    str(p) for p in (workflow.overwrite_configfiles or [DEFAULT_CONFIG])
)
if _CLI_CONFIG:
    CONFIG_SOURCE += " (+ --config overrides)"

try:
    _validated = validate_config(dict(config), source=CONFIG_SOURCE)
except UserError as exc:
    sys.exit(f"jointseg workflow: error: {exc}")
# Update in place: Snakemake and the report keep a reference to this dict.
config.clear()
config.update(_validated)

DATASETS = sorted(config["datasets"])
RUNS = run_names(config)  # attention variants, then baselines
SEEDS = [int(s) for s in config["seeds"]]
DATA = config["data_dir"].rstrip("/")
# Each study owns results/<study>/: running the paper study touches nothing of the demo's.
# jointseg.paths owns the layout; the rules only name files inside its folders.
RESULTS = str(paths.study_dir(config["results_dir"], config["study"]))
SUMMARY = str(paths.summary_dir(RESULTS))
# Each data set's prepared folder, keyed by its preparation settings: another
# study (or an edited `size`) preparing it differently gets a folder of its own.
PREPARATION_KEYS = {ds: preparation_key(config["datasets"][ds]) for ds in DATASETS}
PREPARED = {
    ds: str(paths.prepared_dir(DATA, ds, PREPARATION_KEYS[ds])) for ds in DATASETS
}


def run_file(name: str) -> str:
    """File ``name`` of one training run, with {dataset}, {variant} and {seed} wildcards."""
    return str(paths.run_dir(RESULTS, "{dataset}", "{variant}", "{seed}") / name)


def prepared_file(name: str) -> str:
    """File ``name`` of a prepared data set, with {dataset} and {prep} (its key) wildcards."""
    return str(paths.prepared_dir(DATA, "{dataset}", "{prep}") / name)


def prepared_path(dataset: str, name: str) -> str:
    """File ``name`` in the prepared folder of ``dataset`` under this study's settings."""
    return str(Path(PREPARED[dataset]) / name)


def prepared_input(name: str) -> Callable[..., str]:
    """Input function: file ``name`` in the prepared folder of the job's {dataset}."""
    return lambda wildcards: prepared_path(wildcards.dataset, name)


def raw_file(name: str) -> str:
    """File ``name`` of a raw data set folder, with the {dataset} wildcard."""
    return str(paths.raw_dir(DATA, "{dataset}") / name)


def summary_file(name: str) -> str:
    """File ``name`` of the study's summary."""
    return str(paths.summary_dir(RESULTS) / name)


def pipeline_file(name: str) -> str:
    """Bookkeeping file ``name`` of the study (results/<study>/.pipeline/)."""
    return str(
        paths.study_dir(config["results_dir"], config["study"]) / ".pipeline" / name
    )


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


wildcard_constraints:
    dataset="|".join(DATASETS),
    variant="|".join(RUNS),
    seed=r"\d+",
    # only this study's keys: no job prepares a data set under settings it does not use
    prep="|".join(sorted(set(PREPARATION_KEYS.values()))),


# The checkpoint that predicts the test set and draws the figures
# (predict.checkpoint: `final`, or `best` on validation Dice).
EVAL_CHECKPOINT = run_file(f"checkpoints/{config['predict']['checkpoint']}.pt")

# --- the effective config --------------------------------------------------
# `jointseg` commands take a config *file*; the one Snakemake uses may carry
# --config overrides, so the main process writes the validated, defaults-filled
# config here and every command reads it. It is deliberately no input of any rule:
# a change in one variant's settings must rerun only that variant (the resolve
# rule's params carry each run's own settings), and rewriting it never makes
# anything rerun.
EFFECTIVE_CONFIG = pipeline_file("config.yaml")


def _write_effective_config() -> None:
    text = (
        f"# Written by the Snakefile from {CONFIG_SOURCE}; do not edit (it is rewritten).\n"
        + yaml.safe_dump(config, sort_keys=True)
    )
    path = Path(EFFECTIVE_CONFIG)
    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)


if workflow.is_main_process:
    _write_effective_config()


# --- resources ---------------------------------------------------------------
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


def run_settings(wildcards) -> str:
    """The resolved settings of one training run, as canonical JSON (a rule param)."""
    settings = resolve_run(
        config,
        wildcards.dataset,
        wildcards.variant,
        int(wildcards.seed),
        prepared_dir=PREPARED[wildcards.dataset],
    )
    return json.dumps(settings, sort_keys=True)


def all_runs(pattern: str) -> list[str]:
    """``pattern`` (with {dataset}, {variant}, {seed}) expanded over the whole study."""
    return expand(pattern, dataset=DATASETS, variant=RUNS, seed=SEEDS)


# --- MLflow parent run ---------------------------------------------------------
# Each invocation that has work to do owns one parent run (Snakemake calls
# onstart neither for dry runs, --report, nor when nothing is to be done).
# `jointseg track start` prints its id; it goes into this process's
# environment, which the jobs of this invocation alone inherit (local jobs
# copy os.environ; the Slurm executor submits with --export=ALL). No file
# holds it, so no rule depends on it and another invocation never sees it.
# The Snakemake process is the run's owner: if it dies (kill -9), the next
# start marks the run KILLED and moves its children under the new parent.
# MLflow is a view of the results: a tracking failure of these hooks is one
# warning line, never a failed study (a job whose tracking store stays
# unreachable fails, see jointseg.tracking.store). JOINTSEG_MLFLOW=0 switches it off.
import subprocess

MLFLOW_PARENT_ENV = "JOINTSEG_MLFLOW_PARENT"
MLFLOW_LOG = "logs/mlflow_parent.log"
MLFLOW_OFF = ("0", "off", "false", "no")


def _track(*args: str) -> str | None:
    """Run `python -m jointseg track ARGS`: its stdout, or None (off; failed: a warning)."""
    if not workflow.is_main_process:  # hooks also fire inside cluster jobs
        return None
    if os.environ.get("JOINTSEG_MLFLOW", "1").strip().lower() in MLFLOW_OFF:
        return None
    cmd = [sys.executable, "-m", "jointseg", "track", *args]
    cmd += ["--config", EFFECTIVE_CONFIG] + (
        ["--study-dir", RESULTS] if args[0] == "start" else []
    )
    try:
        Path(MLFLOW_LOG).parent.mkdir(parents=True, exist_ok=True)
        with open(MLFLOW_LOG, "a") as log:
            done = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=log, text=True, timeout=900
            )
        failure = f"exit {done.returncode}" if done.returncode else None
    except (OSError, subprocess.SubprocessError) as exc:
        done, failure = None, f"{type(exc).__name__}: {exc}"
    if failure:
        print(
            f"jointseg workflow: warning: MLflow tracking '{args[0]}' failed "
            f"({failure}); the study goes on, details in {MLFLOW_LOG}",
            file=sys.stderr,
        )
        return None
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else None


onstart:
    # never a run id inherited from elsewhere
    os.environ.pop(MLFLOW_PARENT_ENV, None)
    _parent = _track("start", "--owner-pid", str(os.getpid()))
    if _parent:
        os.environ[MLFLOW_PARENT_ENV] = _parent


onsuccess:
    # The summary's seed means become metrics of the parent; the folder (tables,
    # figures, provenance) its artifacts. A partial target may have no summary.
    if os.environ.get(MLFLOW_PARENT_ENV):
        _track("finish", "--status", "FINISHED", "--summary", SUMMARY)


onerror:
    if os.environ.get(MLFLOW_PARENT_ENV):
        _track("finish", "--status", "FAILED")
