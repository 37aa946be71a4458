"""The jointseg command line: one sub-command per pipeline stage.

Each command lives in its own module exposing ``add_arguments(parser)`` and
``main(args) -> int``; modules are imported only when their command runs, so
``jointseg --help`` stays fast (no torch import).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .io_utils import UserError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "download": ("jointseg.data.download", "fetch a data set's archives, verify checksums, extract"),
    "prepare": ("jointseg.data.prepare", "convert raw data (isic, msd, nnunet) into arrays + manifest + splits"),
    "make-demo": ("jointseg.data.demo", "(re)generate the embedded synthetic demo data sets"),
    "config-docs": ("jointseg.config_docs", "write config/README.md: every config key, generated from the schema"),
    "resolve": ("jointseg.config_cli", "write the resolved settings of one training run as JSON"),
    "train": ("jointseg.training.cli", "train one (data set, variant, seed)"),
    "predict": ("jointseg.inference.predict", "segment images or NIfTI volumes with a checkpoint"),
    "evaluate": ("jointseg.evaluation.evaluate", "per-case metrics of a prediction folder against references"),
    "attention-stats": (
        "jointseg.evaluation.attention_stats",
        "locality of one run's attention maps over test queries",
    ),
    "aggregate": ("jointseg.reporting.aggregate", "summary tables, statistics and figures over all runs"),
    "claims": ("jointseg.reporting.claims_report", "attention statistics, balance and the verdict on each paper claim"),
    "headline-metrics": ("jointseg.reporting.headline", "headline means per data set x variant (dvc metrics)"),
    "dvc-template": ("jointseg.reporting.dvc_plots", "write the offline HTML template of `dvc plots show`"),
    "track": ("jointseg.tracking.cli", "MLflow: open / close an invocation's parent run, log test metrics"),
    "provenance": ("jointseg.provenance", "code commit, package versions, data hashes and run settings as JSON"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; with ``command`` only that sub-command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="jointseg",
        description=__doc__.splitlines()[0],
        epilog="The workflow chains download -> prepare -> resolve -> train -> predict -> evaluate -> "
        "aggregate; `jointseg COMMAND --help` lists a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"jointseg {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(sp)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, dispatch, turn :class:`UserError` into a one-line message and exit 2."""
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).main(args) or 0)
    except UserError as exc:
        print(f"jointseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jointseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
