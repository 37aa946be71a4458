"""MLflow tracking: one experiment per study (``jointseg-<study>``), a parent run per
pipeline invocation, a child run per (data set, variant, seed).

Backend: ``mlflow.tracking_uri`` of the config if set, else ``$MLFLOW_TRACKING_URI``,
else ``sqlite:///<cwd>/mlflow.db`` (the project root when run by Snakemake); a
tracking server (``http://…``) works the same way. ``JOINTSEG_MLFLOW=0`` turns
tracking off.

- :mod:`.store`: URI, client (store created once per study), experiment, retries, batches;
- :mod:`.artifacts`: uploads (no Snakemake markers; hard links into a local store);
- :mod:`.child`: :class:`RunTracker`, the run of one training;
- :mod:`.parent`: the invocation's parent run, stale-run clean-up, test metrics;
- :mod:`.results`: test scores named as in the summary (``test_dice_lesion``, ``test_dice_mean``);
- the command ``jointseg track start|finish|metrics``: :mod:`jointseg.commands.track`.

Importing this package does not import MLflow.
"""

from .child import PARENT_ENV, PARENT_TAG, RunTracker, parent_run_id
from .parent import finish_parent, log_parent_artifacts, log_test_metrics, start_parent
from .store import (
    DISABLE_ENV,
    client,
    experiment_name,
    flatten,
    resolve_tracking_uri,
    retry,
    tracking_enabled,
)

__all__ = [
    "DISABLE_ENV",
    "PARENT_ENV",
    "PARENT_TAG",
    "RunTracker",
    "client",
    "experiment_name",
    "finish_parent",
    "flatten",
    "log_parent_artifacts",
    "log_test_metrics",
    "parent_run_id",
    "resolve_tracking_uri",
    "retry",
    "start_parent",
    "tracking_enabled",
]
