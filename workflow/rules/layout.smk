# The study's layout: which data sets, runs and seeds; where every file lives
# (jointseg.paths owns the layout, the rules only name files inside its folders);
# the wildcards' values; a run's resolved settings.
import json
from collections.abc import Callable

from jointseg.config import preparation_key, resolve_run, run_names

DATASETS = sorted(config["datasets"])
RUNS = run_names(config)  # attention variants, then baselines
SEEDS = [int(s) for s in config["seeds"]]
DATA = config["data_dir"].rstrip("/")
# Each study owns results/<study>/: running the paper study touches nothing of the demo's.
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
    return str(paths.pipeline_dir(RESULTS) / name)


wildcard_constraints:
    dataset="|".join(DATASETS),
    variant="|".join(RUNS),
    seed=r"\d+",
    # only this study's keys: no job prepares a data set under settings it does not use
    prep="|".join(sorted(set(PREPARATION_KEYS.values()))),


# The checkpoint that predicts the test set and draws the figures
# (predict.checkpoint: `final`, or `best` on validation Dice).
EVAL_CHECKPOINT = run_file(f"checkpoints/{config['predict']['checkpoint']}.pt")


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


def settings_json(*keys: str) -> Callable[..., str]:
    """Param function: the config's ``keys`` as canonical JSON (a summary rule reruns when they change)."""
    return lambda wildcards: json.dumps({k: config[k] for k in keys}, sort_keys=True)


def all_runs(pattern: str) -> list[str]:
    """``pattern`` (with {dataset}, {variant}, {seed}) expanded over the whole study."""
    return expand(pattern, dataset=DATASETS, variant=RUNS, seed=SEEDS)
