"""The jointseg command line: one sub-command per pipeline stage.

Each command is a module of :mod:`jointseg.commands` named after it, with
``add_arguments(parser)`` and ``main(args) -> int``. Those modules import their
stage only when they run, so ``jointseg --help`` stays fast (no torch import).
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from . import __version__
from .commands import (
    aggregate,
    attention_stats,
    claims,
    config_docs,
    download,
    dvc_template,
    evaluate,
    headline_metrics,
    make_demo,
    predict,
    prepare,
    provenance,
    resolve,
    track,
    train,
)
from .data.formats import FORMATS
from .io_utils import UserError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[ModuleType, str]] = {
    "download": (download, "fetch a data set's archives, verify checksums, extract"),
    "prepare": (prepare, f"convert raw data ({', '.join(FORMATS)}) into arrays + manifest + splits"),
    "make-demo": (make_demo, "(re)generate the embedded synthetic demo data sets"),
    "config-docs": (config_docs, "write config/README.md: every config key, generated from the schema"),
    "resolve": (resolve, "write the resolved settings of one training run as JSON"),
    "train": (train, "train one (data set, variant, seed)"),
    "predict": (predict, "segment images or NIfTI volumes with a checkpoint"),
    "evaluate": (evaluate, "per-case metrics of a prediction folder against references"),
    "attention-stats": (attention_stats, "locality of one run's attention maps over test queries"),
    "aggregate": (aggregate, "summary tables, statistics and figures over all runs"),
    "claims": (claims, "attention statistics, balance and the verdict on each paper claim"),
    "headline-metrics": (headline_metrics, "headline means per data set x variant (dvc metrics)"),
    "dvc-template": (dvc_template, "write the offline HTML template of `dvc plots show`"),
    "track": (track, "MLflow: open / close an invocation's parent run, log test metrics"),
    "provenance": (provenance, "code commit, package versions, data hashes and run settings as JSON"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; with ``command`` only that sub-command's options are added."""
    parser = argparse.ArgumentParser(
        prog="jointseg",
        description=__doc__.splitlines()[0],
        epilog="The workflow chains download -> prepare -> resolve -> train -> predict -> evaluate -> "
        "aggregate; `jointseg COMMAND --help` lists a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"jointseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module.add_arguments(sp)
    return parser


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
        return int(COMMANDS[args.command][0].main(args) or 0)
    except UserError as exc:
        print(f"jointseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jointseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
