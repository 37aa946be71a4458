"""``jointseg track``: the MLflow parent run of a pipeline invocation and the runs' test scores.

    jointseg track start   --config CFG [--study-dir DIR] [--owner-pid PID]   # prints the run id
    jointseg track finish  --status FINISHED|FAILED|KILLED [--summary DIR] [--artifacts ...] [--run-id ID]
    jointseg track metrics --metrics RUN_DIR/metrics.csv [...] [--run-dir RUN_DIR] [--summary SUMMARY.csv]

``finish`` closes ``--run-id`` or ``$JOINTSEG_MLFLOW_PARENT``. A failure of
``start``/``finish`` is one line on stderr and exit 1 (the workflow turns it into
a warning); ``metrics`` warns and exits 0 (MLflow is a view of ``metrics.csv``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..config import load_config
from ..io_utils import UserError
from ..tracking.child import one_line
from ..tracking.parent import finish_parent, log_test_metrics, start_parent
from ..tracking.store import raise_if_unreachable, resolve_tracking_uri, tracking_enabled


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands of ``jointseg track``."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = sub.add_parser("start", help="open the parent run of this pipeline invocation; print its id")
    start.add_argument("--config", required=True, help="study config YAML")
    start.add_argument(
        "--study-dir",
        dest="results_dir",
        default=None,
        help="the study's results folder (default: <results_dir>/<study>)",
    )
    start.add_argument(
        "--owner-pid",
        type=int,
        default=None,
        help="process owning the run (default: the caller, i.e. the parent process)",
    )
    finish = sub.add_parser("finish", help="log the summary to the parent run and close it")
    finish.add_argument("--config", default=None, help="study config YAML (tracking URI, class names)")
    finish.add_argument(
        "--status", choices=["FINISHED", "FAILED", "KILLED"], default="FINISHED", help="final status of the parent run"
    )
    finish.add_argument("--summary", default=None, help="summary folder (summary.csv, stats.csv, figures)")
    finish.add_argument("--artifacts", nargs="*", default=[], help="further files or folders to upload")
    finish.add_argument("--run-id", default=None, help="default: $JOINTSEG_MLFLOW_PARENT")
    metrics = sub.add_parser("metrics", help="log a run's test metrics (metrics.csv) to its MLflow run")
    metrics.add_argument("--metrics", nargs="+", required=True, type=Path, help="<run dir>/metrics.csv file(s)")
    metrics.add_argument(
        "--run-dir", type=Path, default=None, help="the training's folder (default: the folder of each metrics file)"
    )
    metrics.add_argument("--config", default=None, help="study config YAML (its mlflow.tracking_uri)")
    metrics.add_argument(
        "--summary",
        type=Path,
        default=None,
        help="the study's summary.csv: log each run's rows of it (every summary score) instead of its metrics.csv",
    )


def main(args: argparse.Namespace) -> int:
    """Run one ``track`` action."""
    if not tracking_enabled():
        print("jointseg track: tracking is off (JOINTSEG_MLFLOW)", file=sys.stderr)
        return 0
    config = _load(args.config)
    if args.action == "metrics":
        return _metrics(args, config, log_test_metrics)
    try:
        if args.action == "start":
            owner = args.owner_pid if args.owner_pid is not None else os.getppid()
            print(start_parent(config, args.results_dir, owner))
        else:
            print(finish_parent(args.status, config, args.summary, args.artifacts, args.run_id))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback
        print(f"jointseg track {args.action}: MLflow failed ({one_line(exc)})", file=sys.stderr)
        return 1
    return 0


def _load(path: str | None) -> dict | None:
    if path is None:
        return None
    return load_config(path)


def _metrics(args: argparse.Namespace, config: dict | None, log_test_metrics) -> int:
    if args.run_dir is not None and len(args.metrics) > 1:
        raise UserError("--run-dir goes with one --metrics file (each file's folder is its run folder)")
    uri = ((config or {}).get("mlflow") or {}).get("tracking_uri")
    if args.summary is not None and not args.summary.is_file():
        raise UserError(f"{args.summary}: summary not found; run 'jointseg aggregate' first")
    for path in args.metrics:
        if not path.is_file():
            raise UserError(f"{path}: metrics file not found; run 'jointseg evaluate' first")
        try:
            run_id = log_test_metrics(path, args.run_dir, uri, args.summary)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - MLflow is a view: warn, unless the store is unreachable
            raise_if_unreachable(resolve_tracking_uri(uri), exc)  # fails the job: a rerun logs them
            print(f"jointseg track metrics: warning: {path}: MLflow failed ({one_line(exc)})", file=sys.stderr)
            continue
        if run_id:
            print(f"jointseg track metrics: {path} -> run {run_id}")
    return 0
