"""``jointseg dvc-template``: write the offline HTML template of ``dvc plots show``.

    jointseg dvc-template --out .dvc/plots_page.html

Why and what it inlines: :mod:`jointseg.reporting.dvc_plots`.
"""

from __future__ import annotations

import argparse

from ..io_utils import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jointseg dvc-template``."""
    parser.add_argument(
        "--out", default=".dvc/plots_page.html", help="the template .dvc/config names (default: %(default)s)"
    )


def main(args: argparse.Namespace) -> int:
    """Run ``jointseg dvc-template``."""
    from ..reporting.dvc_plots import VEGA_PACKAGE, write_page_template  # lazy: pandas

    try:
        path = write_page_template(args.out)
    except ModuleNotFoundError:
        raise UserError(f"package {VEGA_PACKAGE} not installed: pip install django-js-lib-vega-embed") from None
    print(f"jointseg dvc-template: wrote {path}")
    return 0
