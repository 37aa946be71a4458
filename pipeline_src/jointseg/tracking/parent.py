"""The parent run of one pipeline invocation, and the test scores of its runs.

Each Snakemake invocation owns its parent: ``jointseg track start`` (the
workflow's ``onstart``) opens it and prints its id, which the workflow puts in
``$JOINTSEG_MLFLOW_PARENT`` for the jobs of that invocation only. On start it
also cleans up after invocations that died (``kill -9``, a lost login node):

- a RUNNING run whose owner process is gone (see :mod:`.owner`) is marked KILLED;
- the children of this results folder's earlier parents that ended FAILED or
  KILLED move under the new parent (their work is continued here), so after a
  crash and a successful rerun every child sits under a FINISHED parent.

``jointseg track finish`` logs the summary (a few headline seed means as metrics,
``summary.csv`` as a table MLflow shows, the summary folder as artifacts) and
closes the run. What the MLflow UI opens on (the experiment's kind, a shared view of
the training runs, run colours, the parent's data sets): :mod:`.views`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .. import paths
from ..io_utils import UserError
from .artifacts import upload
from .child import KIND_TAG, PARENT_ENV, PARENT_TAG, parent_run_id, provenance_tags, source_tags, warn
from .owner import owner_gone, owner_tags
from .results import parent_metrics, read_table, run_id_of, run_scores, run_settings
from .store import (
    client,
    experiment_name,
    flatten,
    get_or_create_experiment,
    log_batch,
    resolve_tracking_uri,
    retry,
    tracking_enabled,
)
from .views import RUN_COLOUR_TAG, log_parent_datasets, tag_experiment, variant_colour

RESULTS_TAG = "jointseg.results_dir"
CONTINUED_TAG = "jointseg.continued_by"
RUN_TABLE = "summary_table.json"  # summary.csv as an MLflow table artifact (the artifact view shows it)


def _uri(config: dict | None) -> str:
    return resolve_tracking_uri(((config or {}).get("mlflow") or {}).get("tracking_uri"))


def _search(c, exp_id: str, filter_string: str = "") -> list:
    """Every run of the experiment matching ``filter_string`` (all pages)."""
    runs, token = [], None
    while True:
        page = retry(c.search_runs, [exp_id], filter_string, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def start_parent(config: dict, results_dir: str | Path | None = None, owner_pid: int | None = None) -> str:
    """Open the parent run of one invocation, owned by ``owner_pid`` (default: this process).

    ``results_dir`` is the study's results folder (default ``<results_dir>/<study>``,
    the folder the workflow passes). Marks stale RUNNING runs KILLED and adopts the
    children of earlier failed or killed parents of the same folder. Returns the new run id.
    """
    c = client(_uri(config))
    exp_id = get_or_create_experiment(c, experiment_name(config["study"]))
    tag_experiment(c, exp_id)
    study_dir = results_dir or paths.study_dir(config["results_dir"], config["study"])
    results = str(Path(study_dir).resolve())
    tags = {
        KIND_TAG: "pipeline",
        RESULTS_TAG: results,
        **source_tags("snakemake (Snakefile)"),
        **provenance_tags(),
        **owner_tags(owner_pid),
    }
    run = retry(c.create_run, exp_id, tags=tags, run_name=f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}")
    run_id = run.info.run_id
    log_batch(c, run_id, params=flatten(config))
    retry(c.log_text, run_id, json.dumps(config, indent=2, sort_keys=True, default=str), "config.json")
    for stale in close_stale_runs(c, exp_id, keep=run_id):
        print(f"jointseg track: run {stale} was RUNNING without a live owner; marked KILLED", file=sys.stderr)
    moved = adopt_children(c, exp_id, results, run_id)
    if moved:
        print(f"jointseg track: {moved} run(s) of failed or killed invocations moved under {run_id}", file=sys.stderr)
    return run_id


def close_stale_runs(c, exp_id: str, keep: str | None = None) -> list[str]:
    """Mark KILLED every RUNNING run of the experiment whose owner process is gone."""
    closed = []
    for run in _search(c, exp_id, "attributes.status = 'RUNNING'"):
        if run.info.run_id != keep and owner_gone(run.data.tags):
            retry(c.set_terminated, run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


def adopt_children(c, exp_id: str, results: str, parent: str) -> int:
    """Move the children of earlier FAILED/KILLED parents of ``results`` under ``parent``."""
    moved = 0
    for old in _search(c, exp_id, f"tags.`{KIND_TAG}` = 'pipeline'"):
        tags = old.data.tags
        if (
            old.info.run_id == parent
            or old.info.status not in ("FAILED", "KILLED")
            or tags.get(RESULTS_TAG) != results
            or tags.get(CONTINUED_TAG)
        ):
            continue
        for child in _search(c, exp_id, f"tags.`{PARENT_TAG}` = '{old.info.run_id}'"):
            retry(c.set_tag, child.info.run_id, PARENT_TAG, parent)
            moved += 1
        retry(c.set_tag, old.info.run_id, CONTINUED_TAG, parent)
    return moved


def finish_parent(
    status: str,
    config: dict | None = None,
    summary: str | Path | None = None,
    artifacts: Sequence[str | Path] = (),
    run_id: str | None = None,
) -> str:
    """Log the summary and ``artifacts`` to the parent run and close it with ``status``.

    ``summary``: the summary folder; if it holds ``summary.csv``, its headline seed means
    become metrics (:func:`.results.parent_metrics`, at most 40), the whole table the table
    artifact :data:`RUN_TABLE`, and the folder (tables, figures; no Snakemake marker files)
    the artifact ``summary/``. Returns the run id.
    """
    run_id = run_id or parent_run_id()
    if not run_id:
        raise UserError(f"no parent run: pass --run-id or set ${PARENT_ENV} (the id 'jointseg track start' printed)")
    for path in artifacts:
        if not Path(path).exists():
            raise UserError(f"{path}: artifact not found; run 'jointseg aggregate' first or drop it")
    c = client(_uri(config))
    try:
        if summary is not None and (Path(summary) / "summary.csv").is_file():
            table = Path(summary) / "summary.csv"
            log_batch(c, run_id, metrics=parent_metrics(table, config))
            retry(c.log_table, run_id, read_table(table), RUN_TABLE)
            log_parent_datasets(c, run_id, Path(summary) / "provenance.json")
            upload(c, run_id, summary, "summary")
        for path in artifacts:
            upload(c, run_id, path)
    except Exception as exc:  # noqa: BLE001 - still close the run: never a RUNNING parent left behind
        warn("summary logging", exc)
    retry(c.set_terminated, run_id, status)
    return run_id


def log_parent_artifacts(
    files: Iterable[str | Path], config: dict | None = None, artifact_path: str | None = None
) -> bool:
    """Upload files/folders to the current parent run (``$JOINTSEG_MLFLOW_PARENT``).

    False (nothing logged) without a parent or when tracking is off; failures warn
    and return False (the files are on disk).
    """
    run_id = parent_run_id()
    if not tracking_enabled() or not run_id:
        return False
    try:
        c = client(_uri(config))
        for path in files:
            if Path(path).exists():
                upload(c, run_id, path, artifact_path)
    except Exception as exc:  # noqa: BLE001 - MLflow is a view of the files
        warn("parent artifact logging", exc)
        return False
    return True


def log_test_metrics(
    metrics_csv: str | Path,
    run_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    summary_csv: str | Path | None = None,
) -> str | None:
    """Log a run's test metrics (:func:`.results.run_scores`) to its child run.

    ``run_dir`` (default: the folder of ``metrics_csv``) holds ``run_config.json``
    (class names, tracking URI) and the run id (``train_done.json``). With
    ``summary_csv`` the scores are the run's rows of the summary (every score it has).
    Returns the run id, or None when the training was not tracked.
    """
    run_dir = Path(run_dir) if run_dir is not None else Path(metrics_csv).parent
    settings = run_settings(run_dir)
    scores = run_scores(metrics_csv, settings.get("labels"), summary_csv)
    run_id = run_id_of(run_dir)
    if run_id is None:
        print(
            f"jointseg track: {run_dir} has no MLflow run id (trained with tracking off); test metrics not logged",
            file=sys.stderr,
        )
        return None
    uri = tracking_uri or _uri(settings)
    tags = {}
    if summary_csv is not None:  # the study's variant order is the summary's row order
        variants = list(dict.fromkeys(read_table(summary_csv)["variant"].astype(str)))
        variant = str(read_table(metrics_csv)["variant"].iloc[0])
        tags = {RUN_COLOUR_TAG: variant_colour(variants, variant)} if variant in variants else {}
    log_batch(client(uri), run_id, metrics=scores, tags=tags)
    return run_id
