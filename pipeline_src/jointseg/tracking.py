"""MLflow tracking: one experiment per study, a parent run per pipeline invocation,
a child run per (data set, variant, seed).

Backend: ``mlflow.tracking_uri`` of the config if set, else ``$MLFLOW_TRACKING_URI``,
else ``sqlite:///<cwd>/mlflow.db`` (the project root when run by Snakemake).
A tracking server (``http://…``) works the same way.

Robustness policy (why): MLflow is a *view* of the run; the files under
``results/`` (checkpoints, ``history.csv``) are authoritative. Several training
jobs write to one SQLite file at once, so every MLflow call is retried with
exponential back-off on transient errors ("database is locked", connection
errors, a race creating the experiment). If a call still fails, a warning is
printed and training goes on: a tracking outage must not cost 30 k iterations.
After the first call that still fails, tracking is switched off for the rest of
that training (a dead server would otherwise cost the retry time at every
later call). Metrics that could not be logged remain in ``history.csv``.

``import mlflow`` takes seconds, so it happens inside the functions only.

CLI: ``jointseg track start --config CFG`` opens the parent run and writes its
id to ``<results_dir>/.mlflow_parent_run``; ``jointseg track finish --status
FINISHED|FAILED [--artifacts DIR ...]`` logs artifacts and closes it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .io_utils import UserError, atomic_write_text, sha256_file

PARENT_ENV = "JOINTSEG_MLFLOW_PARENT"
DISABLE_ENV = "JOINTSEG_MLFLOW"  # "0"/"off"/"false" disables tracking in training
PARENT_FILE = ".mlflow_parent_run"
PARENT_TAG = "mlflow.parentRunId"

# Substrings of error messages / class names that mark a transient failure.
_TRANSIENT = (
    "database is locked",
    "database is busy",
    "locked",
    "operationalerror",
    "connection",
    "timed out",
    "temporarily",
    "resource_already_exists",
    "unique constraint",
    "already exists",
    "503",
    "502",
    "504",
    "429",
)


def quiet_environment() -> None:
    """Environment settings so MLflow never reaches the network and stays quiet."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # Retries are ours (with back-off); MLflow's own HTTP retries would stack on top.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")


def tracking_enabled() -> bool:
    """False when ``$JOINTSEG_MLFLOW`` is 0/off/false/no."""
    return os.environ.get(DISABLE_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def resolve_tracking_uri(config_uri: str | None = None, root: str | Path | None = None) -> str:
    """Config value > ``$MLFLOW_TRACKING_URI`` > ``sqlite:///<root or cwd>/mlflow.db``."""
    if config_uri:
        return str(config_uri)
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    base = Path(root) if root is not None else Path.cwd()
    return f"sqlite:///{(base / 'mlflow.db').resolve()}"


def experiment_name(study: str) -> str:
    """The experiment of a study: ``jointseg-<study>``."""
    return f"jointseg-{study}"


def _is_transient(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in _TRANSIENT)


def retry(fn: Callable[..., Any], *args: Any, attempts: int = 10, base_delay: float = 0.1,
          max_delay: float = 5.0, **kwargs: Any) -> Any:
    """Call ``fn`` and retry transient failures with jittered exponential back-off.

    Non-transient exceptions and the last transient one are re-raised.
    """
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - classified below
            if attempt == attempts - 1 or not _is_transient(exc):
                raise
            delay = min(max_delay, base_delay * 2**attempt) * (0.5 + random.random())
            time.sleep(delay)
    raise AssertionError("unreachable")


def client(uri: str):
    """An :class:`mlflow.tracking.MlflowClient` for ``uri`` (store creation retried: four
    processes may initialise one SQLite file at the same moment)."""
    quiet_environment()
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite"):  # import the SQL store's modules before taking the lock (slow imports)
        import mlflow.store.db.utils  # noqa: F401
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    def make():
        c = MlflowClient(tracking_uri=uri)
        c.search_experiments(max_results=1)  # forces store creation / schema migration
        return c

    # Creating a fresh SQLite store runs Alembic migrations; two processes migrating one
    # file at once leave it half-migrated and unusable. Serialise store creation with an
    # OS file lock beside the database (released when the process dies, even by kill -9).
    with _sqlite_init_lock(uri):
        return retry(make)


@contextlib.contextmanager
def _sqlite_init_lock(uri: str) -> Iterator[None]:
    if not uri.startswith("sqlite:///"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (parallel first use may then fail and is retried)
        yield
        return
    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def get_or_create_experiment(mlclient, name: str) -> str:
    """Experiment id of ``name``; creating it is race-safe (a parallel creator wins, we read)."""

    def once() -> str:
        exp = mlclient.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                mlclient.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        try:
            return mlclient.create_experiment(name)
        except Exception as exc:  # noqa: BLE001
            exp = mlclient.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            raise exc

    return retry(once)


def git_commit(cwd: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the project, or ``'unknown'`` outside git / without commits."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide the numbers."""
    from importlib import metadata

    out = {}
    for name in ("torch", "monai", "numpy", "jointseg", "mlflow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "jointseg":
                from . import __version__

                out[name] = __version__
            else:
                out[name] = "not installed"
    return out


def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    """Flatten nested dicts to ``{"a.b.c": "value"}`` (lists as JSON) for MLflow params."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
        if not obj and prefix:
            out[prefix[:-1]] = "{}"
        return out
    text = json.dumps(obj) if isinstance(obj, (list, tuple)) else str(obj)
    out[prefix[:-1]] = text[:6000]  # MLflow's param value limit
    return out


def find_parent_file(start: str | Path) -> Path | None:
    """The nearest ``.mlflow_parent_run`` in ``start`` or one of its ancestors."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PARENT_FILE
        if candidate.is_file():
            return candidate
    return None


def parent_run_id(search_from: str | Path | None = None) -> str | None:
    """Parent run id: ``$JOINTSEG_MLFLOW_PARENT``, else the nearest parent-run file
    above ``search_from`` (``results/D/V/seedK`` finds ``results/.mlflow_parent_run``)."""
    env = os.environ.get(PARENT_ENV, "").strip()
    if env:
        return env
    if search_from is None:
        return None
    found = find_parent_file(search_from)
    if found is None:
        return None
    text = found.read_text().strip().splitlines()
    return text[0].strip() if text else None


def _warn(what: str, exc: BaseException) -> None:
    msg = f"jointseg: MLflow {what} failed ({type(exc).__name__}: {exc}); training continues, results/ files are complete"
    warnings.warn(msg, RuntimeWarning, stacklevel=3)
    print(msg, file=sys.stderr)


class RunTracker:
    """The MLflow child run of one training (or a no-op when tracking is off).

    Every method retries transient errors, then warns and returns: a tracking
    outage never stops training. Metrics are buffered and sent in batches
    (one SQLite transaction per batch instead of per value).
    """

    def __init__(self, run_config: dict, out_dir: str | Path, enabled: bool = True,
                 resume_run_id: str | None = None) -> None:
        self.enabled = enabled and tracking_enabled()
        self.run_id: str | None = None
        self._client = None
        self._buffer: list[tuple[str, float, int, int]] = []
        if not self.enabled:
            return
        try:
            self._open(run_config, Path(out_dir), resume_run_id)
        except Exception as exc:  # noqa: BLE001 - see module docstring
            _warn("run creation", exc)
            self.enabled = False

    def _open(self, rc: dict, out_dir: Path, resume_run_id: str | None) -> None:
        self.uri = resolve_tracking_uri(rc.get("mlflow", {}).get("tracking_uri"))
        self._client = client(self.uri)
        if resume_run_id:
            try:
                run = retry(self._client.get_run, resume_run_id)
                if run.info.lifecycle_stage != "deleted":
                    self.run_id = resume_run_id
                    retry(self._client.update_run, resume_run_id, status="RUNNING")
                    return
            except Exception:  # noqa: BLE001 - run gone (other store?): open a new one
                pass
        exp_id = get_or_create_experiment(self._client, experiment_name(rc["study"]))
        tags = {
            "mlflow.runName": f"{rc['dataset']}/{rc['variant']}/seed{rc['seed']}",
            "mlflow.source.git.commit": git_commit(),
            "git_commit": git_commit(),
            "dataset": rc["dataset"],
            "variant": rc["variant"],
            "seed": str(rc["seed"]),
            "data_sha256": data_hash(rc.get("prepared_dir")),
            **{f"version.{k}": v for k, v in package_versions().items()},
        }
        parent = parent_run_id(out_dir)
        if parent and self._parent_usable(parent):
            tags[PARENT_TAG] = parent
        run = retry(self._client.create_run, exp_id, tags=tags, run_name=tags["mlflow.runName"])
        self.run_id = run.info.run_id
        self.log_params(flatten(rc))

    def _parent_usable(self, parent: str) -> bool:
        """A parent must exist in this store and still be running (else: top-level run)."""
        try:
            run = retry(self._client.get_run, parent)
        except Exception as exc:  # noqa: BLE001
            print(f"jointseg: MLflow parent run {parent} not found ({exc}); logging a top-level run",
                  file=sys.stderr)
            return False
        if run.info.status != "RUNNING":
            print(f"jointseg: MLflow parent run {parent} is {run.info.status}; logging a top-level run",
                  file=sys.stderr)
            return False
        return True

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.enabled or self.run_id is None:
            return None
        try:
            return retry(fn, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self._give_up(what, exc)
            return None

    def _give_up(self, what: str, exc: BaseException) -> None:
        """Warn. If the store itself is unreachable (retries of a transient error ran out),
        also stop tracking this run: a dead server would otherwise cost the full retry
        time at every later call. Other errors (a bad value, ...) affect that call only."""
        if _is_transient(exc):
            _warn(f"{what} (tracking is off for the rest of this run)", exc)
            self.enabled = False
        else:
            _warn(what, exc)

    def log_params(self, params: dict[str, str]) -> None:
        """Log params in chunks of 100 (MLflow's batch limit)."""
        if not self.enabled or self.run_id is None:
            return
        from mlflow.entities import Param

        items = [Param(k[:250], v) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._call("log params", self._client.log_batch, self.run_id, params=items[i:i + 100])

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set run tags."""
        if not self.enabled or self.run_id is None:
            return
        from mlflow.entities import RunTag

        self._call("set tags", self._client.log_batch, self.run_id,
                   tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Buffer metrics of ``step`` (sent by :meth:`flush`)."""
        if not self.enabled:
            return
        now = int(time.time() * 1000)
        for key, value in metrics.items():
            if value is not None:
                self._buffer.append((key, float(value), now, int(step)))

    def flush(self) -> None:
        """Send buffered metrics in batches of 1000; kept for the next flush if it fails."""
        if not self.enabled or self.run_id is None or not self._buffer:
            return
        from mlflow.entities import Metric

        while self._buffer:
            chunk = self._buffer[:1000]
            metrics = [Metric(k, v, ts, s) for k, v, ts, s in chunk]
            try:
                retry(self._client.log_batch, self.run_id, metrics=metrics)
            except Exception as exc:  # noqa: BLE001
                self._give_up("metric logging", exc)
                self._buffer.clear()
                return
            del self._buffer[:len(chunk)]

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or folder as an artifact of the run."""
        path = Path(path)
        if not path.exists():
            return
        fn = self._client.log_artifacts if path.is_dir() else self._client.log_artifact
        if self._client is not None:
            self._call(f"artifact {path.name}", fn, self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store ``text`` as an artifact file."""
        if self._client is not None:
            self._call(f"artifact {artifact_file}", self._client.log_text, self.run_id, text, artifact_file)

    def log_model(self, model, example) -> None:
        """Log ``model`` with a signature inferred from one forward pass on ``example``
        (numpy, one batch at the training size).

        Kept cheap: pickle format (MLflow's default "pt2" runs ``torch.export``, ~5x
        slower here and specialises the batch size to the example's); pip
        requirements are given, not inferred (inference starts a subprocess that
        reloads the model). Loading it needs ``jointseg`` importable.
        """
        if not self.enabled or self.run_id is None:
            return

        def go() -> None:
            import mlflow
            import mlflow.pytorch
            import torch
            from mlflow.models import infer_signature

            with torch.no_grad():
                out = model(torch.as_tensor(example)).float().cpu().numpy()
            import logging

            logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)  # the pickle-format notice
            mlflow.set_tracking_uri(self.uri)
            versions = package_versions()
            with mlflow.start_run(run_id=self.run_id):
                mlflow.pytorch.log_model(
                    model, name="model", signature=infer_signature(example, out), input_example=example,
                    serialization_format="pickle",
                    pip_requirements=[f"torch=={versions['torch']}", f"monai=={versions['monai']}",
                                      f"numpy=={versions['numpy']}", f"jointseg=={versions['jointseg']}"],
                )

        self._call("model logging", go)

    def finish(self, status: str = "FINISHED") -> None:
        """Flush metrics and close the run with ``status``."""
        self.flush()
        if self._client is not None:
            self._call("run termination", self._client.set_terminated, self.run_id, status)
        self.enabled = False  # closed: later calls are no-ops


def data_hash(prepared_dir: str | Path | None) -> str:
    """sha256 of the prepared data set's ``manifest.json`` ('unknown' if absent)."""
    if not prepared_dir:
        return "unknown"
    manifest = Path(prepared_dir) / "manifest.json"
    return sha256_file(manifest) if manifest.is_file() else "unknown"


# ---------------------------------------------------------------- parent run


def start_parent(config: dict, results_dir: str | Path | None = None) -> str:
    """Open the parent run of one pipeline invocation and write its id to
    ``<results_dir>/.mlflow_parent_run``. Returns the run id."""
    uri = resolve_tracking_uri(config.get("mlflow", {}).get("tracking_uri"))
    c = client(uri)
    exp_id = get_or_create_experiment(c, experiment_name(config["study"]))
    commit = git_commit()
    tags = {"mlflow.source.git.commit": commit, "git_commit": commit, "kind": "pipeline",
            **{f"version.{k}": v for k, v in package_versions().items()}}
    run = retry(c.create_run, exp_id, tags=tags, run_name=f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}")
    run_id = run.info.run_id
    from mlflow.entities import Param

    params = [Param(k[:250], v) for k, v in flatten(config).items()]
    for i in range(0, len(params), 100):
        retry(c.log_batch, run_id, params=params[i:i + 100])
    retry(c.log_text, run_id, json.dumps(config, indent=2, sort_keys=True), "config.json")
    results = Path(results_dir or config.get("results_dir", "results"))
    atomic_write_text(results / PARENT_FILE, run_id + "\n")
    return run_id


def log_parent_artifacts(paths: Iterable[str | Path], config: dict | None = None,
                         results_dir: str | Path | None = None, artifact_path: str | None = None) -> bool:
    """Upload files/folders (e.g. ``results/summary``) to the current parent run.

    For ``aggregate.py``. The parent is ``$JOINTSEG_MLFLOW_PARENT`` or
    ``<results_dir>/.mlflow_parent_run``; without one, nothing is logged and False
    is returned. Failures warn and return False (the summary files are on disk).
    """
    if not tracking_enabled():
        return False
    results = Path(results_dir or (config or {}).get("results_dir", "results"))
    run_id = parent_run_id(results)
    if not run_id:
        return False
    try:
        c = client(resolve_tracking_uri((config or {}).get("mlflow", {}).get("tracking_uri")))
        for path in paths:
            path = Path(path)
            if path.is_dir():
                retry(c.log_artifacts, run_id, str(path), artifact_path or path.name)
            elif path.is_file():
                retry(c.log_artifact, run_id, str(path), artifact_path)
    except Exception as exc:  # noqa: BLE001
        _warn("parent artifact logging", exc)
        return False
    return True


def finish_parent(status: str, artifacts: Sequence[str | Path] = (), config: dict | None = None,
                  results_dir: str | Path | None = None) -> str:
    """Log ``artifacts`` to the parent run and close it with ``status``. Returns the run id."""
    results = Path(results_dir or (config or {}).get("results_dir", "results"))
    run_id = parent_run_id(results)
    if not run_id:
        raise UserError(f"no parent run: set ${PARENT_ENV} or run 'jointseg track start' "
                        f"(it writes {results / PARENT_FILE})")
    c = client(resolve_tracking_uri((config or {}).get("mlflow", {}).get("tracking_uri")))
    for path in artifacts:
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: artifact not found; run 'jointseg aggregate' first or drop --artifacts")
        if path.is_dir():
            retry(c.log_artifacts, run_id, str(path), path.name)
        else:
            retry(c.log_artifact, run_id, str(path))
    retry(c.set_terminated, run_id, status)
    return run_id


# ---------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = sub.add_parser("start", help="open the parent run of this pipeline invocation")
    start.add_argument("--config", required=True, help="study config YAML")
    start.add_argument("--results-dir", default=None, help="default: the config's results_dir")
    finish = sub.add_parser("finish", help="log artifacts to the parent run and close it")
    finish.add_argument("--config", default=None, help="study config YAML (tracking URI, results_dir)")
    finish.add_argument("--status", choices=["FINISHED", "FAILED", "KILLED"], default="FINISHED")
    finish.add_argument("--artifacts", nargs="*", default=[], help="files or folders to upload")
    finish.add_argument("--results-dir", default=None)


def main(args: argparse.Namespace) -> int:
    from .config import load_config

    config = load_config(args.config) if args.config else None
    if args.action == "start":
        run_id = start_parent(config, args.results_dir)
    else:
        run_id = finish_parent(args.status, args.artifacts, config, args.results_dir)
    print(run_id)
    return 0
