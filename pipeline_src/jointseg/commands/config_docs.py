"""``jointseg config-docs``: write config/README.md, every config key, generated from the schema.

    jointseg config-docs --out config/README.md

How it is rendered: :mod:`jointseg.config_docs`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config_docs import render
from ..io_utils import atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg config-docs``."""
    parser.add_argument("--out", default=None, help="file to write (default: print to stdout)")


def main(args: argparse.Namespace) -> int:
    """Write (or print) the configuration reference."""
    text = render()
    if args.out:
        atomic_write_text(Path(args.out), text)
    else:
        print(text, end="")
    return 0
