"""What the MLflow UI opens on: the experiment's kind and a shared view of its training runs,
run colours by variant, and the parent run's data sets.

MLflow 3.17's UI opens an experiment as GenAI (an empty overview) unless the browser chose
"Model training" in the sidebar or the link says ``workflowType=machine_learning``; the
experiment tag ``mlflow.experimentKind`` (set too, for API clients and other UI versions)
no longer decides it. A *shared view* is an experiment tag ``mlflow.sharedViewState.<key>``
holding the runs page's state as JSON, opened by ``?viewStateShareKey=<key>``: here the
training runs only (the parent out of the way), grouped by data set, charts of their Dice.
The link (README, "Tracking"): :func:`training_view_link`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .child import KIND_TAG, dataset_input
from .store import retry

EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
VIEW_KEY = "training-runs"
TRAINING_VIEW = {
    "searchFilter": f"tags.`{KIND_TAG}` = 'training'",
    "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "dataset"}]},
    "useGroupedValuesInCharts": False,  # a chart per run, not per group
    "hideEmptyCharts": True,
    "chartsSearchFilter": "dice",  # validation Dice over steps, best and test Dice per class
}
# matplotlib's tab10, which is vega's category10: the report's figures and the DVC plots give
# the i-th variant of the study this colour too
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
RUN_COLOUR_TAG = "mlflow.runColor"


def tag_experiment(c, experiment_id: str) -> None:
    """Set the experiment's kind and its shared view of the training runs."""
    tags = {**EXPERIMENT_KIND, f"mlflow.sharedViewState.{VIEW_KEY}": json.dumps(TRAINING_VIEW)}
    for key, value in tags.items():
        retry(c.set_experiment_tag, experiment_id, key, value)


def training_view_link(experiment_id: str, base: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI's chart view of the experiment's training runs (``mlflow ui`` serves ``base``)."""
    query = f"viewStateShareKey={VIEW_KEY}&compareRunsMode=CHART&workflowType=machine_learning"
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"


def variant_colour(variants: list[str], variant: str) -> str:
    """The colour of ``variant``: its position in the study's order (``variants``) in :data:`TAB10`."""
    return TAB10[variants.index(variant) % len(TAB10)]


def log_parent_datasets(c, run_id: str, provenance_json: Path) -> None:
    """The study's prepared data sets (``provenance.json``'s ``data``) as the parent's dataset inputs."""
    if not provenance_json.is_file():
        return
    data = json.loads(provenance_json.read_text()).get("data", {})
    inputs = [
        dataset_input({"dataset": ds, "prepared_dir": entry.get("prepared_dir")}, entry["manifest_sha256"])
        for ds, entry in sorted(data.items())
        if entry.get("manifest_sha256")
    ]
    if inputs:
        retry(c.log_inputs, run_id, inputs)
