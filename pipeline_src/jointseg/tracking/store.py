"""The MLflow store: tracking URI, client, experiment, retries, batched logging.

Several training jobs write to one SQLite file at once, so every call is
retried (tenacity, jittered exponential back-off) on *transient* errors only:
a locked database, a dropped connection, an HTTP 429/5xx, a lost race creating
the experiment. Anything else fails at once.

A store that stays unreachable (a transient error after the whole retry budget:
a stopped tracking server, a database locked for a minute) ends the process:
:func:`raise_if_unreachable` turns the error into :class:`TrackingUnavailable`,
one line naming the tracking URI, so that the job fails within a bounded time
and its rerun (after the store is back) continues the same MLflow run. Other
tracking errors are warnings (see :mod:`.child`): a rerun would not fix them.
The bound: ``$JOINTSEG_MLFLOW_RETRY_SECONDS`` (60) of retries, each HTTP request limited by
MLflow's ``MLFLOW_HTTP_REQUEST_TIMEOUT``/``_MAX_RETRIES``/``_BACKOFF_FACTOR``
(set by :func:`quiet_environment` unless already set).

``import mlflow`` takes seconds; it happens inside the functions only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_random_exponential

from ..io_utils import UserError

DISABLE_ENV = "JOINTSEG_MLFLOW"  # "0"/"off"/"false"/"no" switches tracking off
RETRY_ENV = "JOINTSEG_MLFLOW_RETRY_SECONDS"  # retry budget of one call (:func:`retry`), default 60

# MLflow's own HTTP retries under ours: a refused connection costs ~5 s per call, a
# hung server 3 x 30 s, so one call to a dead server gives up within ~2.5 minutes.
HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

# Lower-cased substrings of "<ExceptionClass> <message>" that mark a transient failure.
_TRANSIENT = (
    "database is locked",
    "database is busy",
    "database table is locked",
    "connectionerror",
    "connection refused",
    "connection reset",
    "connection aborted",
    "timed out",
    "max retries exceeded",
    "timeout",
    "temporarily unavailable",
    "resource_already_exists",
    "unique constraint",
    "already exists",
    " 429",
    " 502",
    " 503",
    " 504",
)


def quiet_environment() -> None:
    """Keep MLflow off the network (telemetry) and quiet; bound its HTTP retries (:data:`HTTP_SETTINGS`)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    for key, value in HTTP_SETTINGS.items():
        os.environ.setdefault(key, value)


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


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying (see the module docstring)."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in _TRANSIENT)


class TrackingUnavailable(UserError):
    """The tracking store did not answer within the retry budget: the job stops; a rerun continues."""


def display_uri(uri: str) -> str:
    """``uri`` without its password (``postgresql://user:***@host/db``), for messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def retry_seconds() -> float:
    """How long :func:`retry` keeps trying one call: ``$JOINTSEG_MLFLOW_RETRY_SECONDS``, default 60."""
    return float(os.environ.get(RETRY_ENV, "60"))


def raise_if_unreachable(uri: str | None, exc: BaseException) -> None:
    """Raise :class:`TrackingUnavailable` (naming ``uri``) when ``exc`` is a transient error,
    i.e. one :func:`retry` gave up on; return for any other error."""
    if isinstance(exc, TrackingUnavailable):
        raise exc
    if not is_transient(exc):
        return
    cause = (str(exc).splitlines() or [""])[0][:300]
    raise TrackingUnavailable(
        f"MLflow tracking store {display_uri(uri or '?')} unreachable (retried for {retry_seconds():g} s: "
        f"{type(exc).__name__}: {cause}); files under results/ are complete - bring the store back "
        "(or set JOINTSEG_MLFLOW=0) and rerun the same command: training resumes and continues its MLflow run"
    ) from None


def retry(
    fn: Callable[..., Any],
    *args: Any,
    attempts: int = 10,
    base_delay: float = 0.1,
    max_delay: float = 5.0,
    **kwargs: Any,
) -> Any:
    """``fn(*args, **kwargs)``, retrying transient failures with jittered exponential back-off.

    Gives up after ``attempts`` calls or :func:`retry_seconds`; re-raises the last
    exception, and any non-transient one at once.
    """
    retrying = Retrying(
        stop=stop_after_attempt(attempts) | stop_after_delay(retry_seconds()),
        wait=wait_random_exponential(multiplier=base_delay, max=max_delay),
        retry=retry_if_exception(is_transient),
        reraise=True,
    )
    return retrying(fn, *args, **kwargs)


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _ready_stamp(db: Path) -> str:
    """What the lock file holds once ``db`` is initialised: the MLflow version and the db's inode
    (a deleted and recreated database has another inode, so it is initialised again)."""
    from mlflow.version import VERSION

    return json.dumps({"mlflow": VERSION, "inode": db.stat().st_ino})


def _is_ready(db: Path) -> bool:
    lock = db.with_name(db.name + ".lock")
    try:
        return db.stat().st_size > 0 and lock.read_text() == _ready_stamp(db)
    except OSError:
        return False


@contextlib.contextmanager
def _init_lock(db: Path) -> Iterator[Any]:
    """An OS lock beside the database (released when the process dies, even by kill -9)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def client(uri: str):
    """An ``MlflowClient`` for ``uri``.

    A new SQLite store runs Alembic migrations; two processes migrating one file at
    once leave it unusable. So the first process of a study (``jointseg track start``
    at the workflow's start) creates the store under a file lock and stamps the lock
    file; later processes see the stamp and skip the lock and the extra round trip.
    """
    quiet_environment()
    from mlflow.tracking import MlflowClient

    db = _sqlite_path(uri)
    if db is None or _is_ready(db):
        return MlflowClient(tracking_uri=uri)

    def make():
        c = MlflowClient(tracking_uri=uri)
        c.search_experiments(max_results=1)  # forces store creation / schema migration
        return c

    with _init_lock(db) as fh:
        made = retry(make)
        fh.seek(0)
        fh.truncate()  # rewritten in place: replacing the file would bypass the lock
        fh.write(_ready_stamp(db))
        fh.flush()
    return made


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
        except Exception:
            exp = mlclient.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            raise

    return retry(once)


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


def log_batch(
    mlclient,
    run_id: str,
    metrics: dict[str, float] | None = None,
    step: int = 0,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Log metrics (all at ``step``), params and tags in as few ``log_batch`` calls as MLflow's
    limits allow (1000 entities, of which at most 100 params and 100 tags), each retried."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    ms = [Metric(k, float(v), now, int(step)) for k, v in (metrics or {}).items()]
    ps = [Param(k[:250], str(v)) for k, v in (params or {}).items()]
    ts = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    while ms or ps or ts:
        p, t = ps[:100], ts[:100]
        m = ms[: 1000 - len(p) - len(t)]
        retry(mlclient.log_batch, run_id, metrics=m, params=p, tags=t)
        del ms[: len(m)], ps[: len(p)], ts[: len(t)]
