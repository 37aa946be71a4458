"""The MLflow child run of one training (data set, variant, seed).

Robustness policy (why): MLflow is a *view* of the run; the files under
``results/`` (checkpoints, ``history.csv``) are authoritative. Every call is
retried on transient errors. A store still unreachable after the retries stops
the job with :class:`~.store.TrackingUnavailable` (one line naming the URI; the
last ``latest.pt`` keeps the run id, so the rerun continues this run and re-sends
the metrics since then); any other failure is a warning and training goes on.

The parent run is the one in ``$JOINTSEG_MLFLOW_PARENT``, set by the workflow
for the jobs of one invocation. A resumed training reopens its run (the id is
in its checkpoint) and re-attaches it to the current invocation's parent.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import provenance
from .artifacts import upload
from .owner import owner_tags
from .store import (
    client,
    experiment_name,
    flatten,
    get_or_create_experiment,
    is_transient,
    log_batch,
    raise_if_unreachable,
    resolve_tracking_uri,
    retry,
    tracking_enabled,
)

PARENT_ENV = "JOINTSEG_MLFLOW_PARENT"
PARENT_TAG = "mlflow.parentRunId"
KIND_TAG = "jointseg.kind"  # "pipeline" (parent) or "training" (child)


def parent_run_id() -> str | None:
    """The current invocation's parent run (``$JOINTSEG_MLFLOW_PARENT``), if any."""
    return os.environ.get(PARENT_ENV, "").strip() or None


def one_line(exc: BaseException) -> str:
    """``Class: first line of the message`` (MLflow errors can span pages)."""
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"


def warn(what: str, exc: BaseException) -> None:
    """One warning line on stderr: MLflow failed, the results on disk are complete."""
    print(f"jointseg: warning: MLflow {what} failed ({one_line(exc)}); results/ files are complete", file=sys.stderr)


def provenance_tags() -> dict[str, str]:
    """Code and package provenance shared by parent and child runs."""
    state = provenance.git_state()
    return {
        "mlflow.source.git.commit": state["commit"],
        "git_commit": state["commit"],
        "git_dirty": str(state["dirty"]),
        **{f"version.{k}": v for k, v in provenance.package_versions().items()},
    }


def source_tags(name: str) -> dict[str, str]:
    """What the MLflow UI's Source column shows: the command that made the run."""
    return {"mlflow.source.name": name, "mlflow.source.type": "LOCAL"}


def run_tags(rc: dict) -> dict[str, str]:
    """Tags of a training's run: identity, provenance, owner (for stale-run detection)."""
    return {
        "mlflow.runName": f"{rc['dataset']}/{rc['variant']}/seed{rc['seed']}",
        KIND_TAG: "training",
        "dataset": rc["dataset"],
        "variant": rc["variant"],
        "seed": str(rc["seed"]),
        "data_sha256": provenance.manifest_hash(rc.get("prepared_dir")),
        **source_tags("jointseg train"),
        **provenance_tags(),
        **owner_tags(),
    }


DIGEST_CHARS = 32  # MLflow stores a dataset digest in 36 characters: the data hash's first 32 hex digits


def dataset_input(rc: dict, data_sha256: str):
    """The prepared data set a run trains on, as an MLflow dataset input (the runs table's Dataset
    column): its name, the data hash (sha256 of its ``manifest.json``) as digest, its folder as
    source, and its case counts as profile."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    prepared = Path(rc.get("prepared_dir") or ".").resolve()
    counts = {}
    splits = prepared / "splits.json"
    if splits.is_file():  # {"train": [...], "val": [...], "test": [...]}
        counts = {k: len(v) for k, v in json.loads(splits.read_text()).items() if isinstance(v, list)}
    dataset = Dataset(
        name=str(rc["dataset"]),
        digest=data_sha256[:DIGEST_CHARS],
        source_type="local",
        source=json.dumps({"uri": prepared.as_uri()}),
        profile=json.dumps({"cases": counts, "data_sha256": data_sha256}),
    )
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])


class RunTracker:
    """The MLflow child run of one training (or a no-op when tracking is off).

    Metrics are buffered by :meth:`log_metrics` and sent by :meth:`flush` in
    batches (one SQLite transaction per 1000 values).
    """

    def __init__(
        self, run_config: dict, out_dir: str | Path, enabled: bool = True, resume_run_id: str | None = None
    ) -> None:
        self.enabled = enabled and tracking_enabled()
        self.run_id: str | None = None
        self.uri: str | None = None
        self.experiment_id: str | None = None
        self._artifact_uri: str | None = None
        self._client = None
        self._buffer: list[tuple[str, float, int, int]] = []
        self._num_classes = len(run_config.get("labels") or {}) or None
        self.out_dir = Path(out_dir)
        if not self.enabled:
            return
        try:
            self._open(run_config, resume_run_id)
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            raise_if_unreachable(self.uri, exc)
            warn("run creation", exc)
            self.enabled = False

    def _open(self, rc: dict, resume_run_id: str | None) -> None:
        self.uri = resolve_tracking_uri((rc.get("mlflow") or {}).get("tracking_uri"))
        self._client = client(self.uri)
        parent = self._usable_parent(parent_run_id())
        if resume_run_id and self._reopen(resume_run_id, parent):
            return
        exp_id = get_or_create_experiment(self._client, experiment_name(rc["study"]))
        tags = run_tags(rc)
        if parent:
            tags[PARENT_TAG] = parent
        run = retry(self._client.create_run, exp_id, tags=tags, run_name=tags["mlflow.runName"])
        self.run_id, self.experiment_id, self._artifact_uri = run.info.run_id, exp_id, run.info.artifact_uri
        log_batch(self._client, self.run_id, params=flatten(rc))
        # a view of the data only: a failure here warns and leaves the run tracked
        self._call("dataset input", self._client.log_inputs, self.run_id, [dataset_input(rc, tags["data_sha256"])])

    def _reopen(self, run_id: str, parent: str | None) -> bool:
        """Continue ``run_id`` (RUNNING again, owned by this process, under ``parent``)."""
        try:
            run = retry(self._client.get_run, run_id)
        except Exception as exc:  # noqa: BLE001 - gone (another store?): a new run is opened
            raise_if_unreachable(self.uri, exc)
            return False
        if run.info.lifecycle_stage == "deleted":
            return False
        self.run_id, self.experiment_id, self._artifact_uri = run_id, run.info.experiment_id, run.info.artifact_uri
        retry(self._client.update_run, run_id, status="RUNNING")
        log_batch(self._client, run_id, tags={**owner_tags(), **({PARENT_TAG: parent} if parent else {})})
        return True

    def _usable_parent(self, parent: str | None) -> str | None:
        """``parent`` if it exists in this store (whatever its status), else None."""
        if not parent:
            return None
        try:
            retry(self._client.get_run, parent)
        except Exception as exc:  # noqa: BLE001
            raise_if_unreachable(self.uri, exc)
            print(
                f"jointseg: MLflow parent run {parent} not found ({type(exc).__name__}); logging a top-level run",
                file=sys.stderr,
            )
            return None
        return parent

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.enabled or self.run_id is None:
            return None
        try:
            return retry(fn, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self._give_up(what, exc)
            return None

    def _give_up(self, what: str, exc: BaseException) -> None:
        """Warn; after a transient error (retries exhausted) stop the job (:class:`~.store.TrackingUnavailable`)."""
        if is_transient(exc):
            self.enabled = False  # finish() after the failure sends nothing more
            raise_if_unreachable(self.uri, exc)
        warn(what, exc)

    def log_params(self, params: dict[str, str]) -> None:
        """Log params (batched)."""
        self._call("log params", log_batch, self._client, self.run_id, params=params)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set run tags (one batch)."""
        self._call("set tags", log_batch, self._client, self.run_id, tags=tags)

    def log_metrics(self, metrics: dict[str, float | None], step: int) -> None:
        """Buffer the metrics of ``step`` (``None`` values are skipped); sent by :meth:`flush`."""
        if not self.enabled:
            return
        now = int(time.time() * 1000)
        for key, value in metrics.items():
            if value is not None:
                self._buffer.append((key, float(value), now, int(step)))

    def flush(self) -> None:
        """Send buffered metrics in batches of 1000 (MLflow's limit per call)."""
        if not self.enabled or self.run_id is None or not self._buffer:
            return
        from mlflow.entities import Metric

        while self._buffer and self.enabled:  # a transient failure switches tracking off
            chunk = [Metric(k, v, ts, s) for k, v, ts, s in self._buffer[:1000]]
            del self._buffer[:1000]
            self._call("metric logging", self._client.log_batch, self.run_id, metrics=chunk)
        self._buffer.clear()  # sent, or tracking is off: history.csv has them

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file or folder (without Snakemake's marker files) as an artifact; files are
        hard-linked into a local artifact store (see :mod:`.artifacts`)."""
        if Path(path).exists():
            self._call(
                f"artifact {Path(path).name}",
                upload,
                self._client,
                self.run_id,
                path,
                artifact_path,
                self._artifact_uri,
            )

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store ``text`` as an artifact file."""
        if self._client is not None:
            self._call(f"artifact {artifact_file}", self._client.log_text, self.run_id, text, artifact_file)

    def log_model(self, model, example) -> None:
        """Log ``model`` (an MLflow pytorch model) for inputs shaped like ``example``.

        Kept cheap: the signature is written from the shapes (batch size free,
        ``(N, C, H, W)`` in, ``(N, classes, H, W)`` logits out) instead of being
        inferred by a forward pass; no input example (MLflow would load the model
        back and run it to validate one); pip requirements are given, not inferred
        (inference starts a subprocess that reloads the model); pickle format
        (MLflow's default ``pt2`` runs ``torch.export``). Loading needs ``jointseg``.
        """
        from .model import log_pytorch_model

        self._call(
            "model logging",
            log_pytorch_model,
            self.uri,
            self.experiment_id,
            self.run_id,
            model,
            example,
            self._num_classes,
        )

    def finish(self, status: str = "FINISHED") -> None:
        """Flush metrics and close the run with ``status``; later calls are no-ops."""
        self.flush()
        if self._client is not None:
            self._call("run termination", self._client.set_terminated, self.run_id, status)
        self.enabled = False
