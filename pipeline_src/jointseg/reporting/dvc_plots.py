"""What ``dvc plots show`` draws: plain CSV tables under ``<summary>/plots/``, and the offline page.

Per data set (the top-level ``plots:`` of dvc.yaml):

``<ds>_learning_curves.csv``
    long: ``step,variant,val_dice``, the validation Dice at each step where a
    seed of the variant validated, averaged over those seeds. The template
    ``.dvc/plots/lines_by_variant.json`` draws one line per variant, told apart
    by colour (revisions by dash), with a point at each validation.
``<ds>_test_dice.csv``
    ``variant,dice``: test Dice per variant, the same number as ``metrics.json``
    (:func:`.headline.headline_means`: per run the mean over cases and classes,
    then the mean over seeds); ``.dvc/plots/bars_by_variant.json``, one colour per variant.

Rows follow the study's order (variants as in the config, steps ascending) and
numbers have a fixed format, so identical inputs give byte-identical files.

The page: DVC's default HTML loads vega, vega-lite and vega-embed from a CDN, so it
is blank on a machine without internet (clusters). :func:`write_page_template`
writes the HTML template ``.dvc/config`` names (``plots.html_template``), with the
three libraries inlined from the pinned package ``django-js-lib-vega-embed`` (it
ships their original builds: vega 5.33, vega-lite 5.23, vega-embed 6.29, and needs
no Django to be read); ``make setup`` runs ``jointseg dvc-template``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pandas as pd

from ..io_utils import UserError, atomic_write_text
from .collect import RunKey
from .headline import headline_means
from .tables import write_csv

CURVE_COLUMNS = ["step", "variant", "val_dice"]
# the three libraries, in load order, as the package ships them
VEGA_SCRIPTS = ("vega5.js", "vega-lite5.js", "vega-embed6.js")
VEGA_PACKAGE = "js_lib_vega_embed"  # import name of django-js-lib-vega-embed (its JS files only are read)


def learning_curve_table(histories: dict[RunKey, pd.DataFrame], dataset: str, variants: list[str]) -> pd.DataFrame:
    """``step,variant,val_dice``: each variant's seed-mean validation Dice at its validated steps."""
    parts = []
    for variant in variants:
        runs = [
            h[["step", "val_dice"]].dropna()
            for (ds, v, _), h in histories.items()
            if ds == dataset and v == variant and "val_dice" in h
        ]
        runs = [r for r in runs if not r.empty]
        if runs:
            mean = pd.concat(runs).groupby("step")["val_dice"].mean().sort_index()
            parts.append(pd.DataFrame({"step": mean.index.astype(int), "variant": variant, "val_dice": mean.values}))
    if not parts:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[CURVE_COLUMNS]


def dice_table(metrics: pd.DataFrame, dataset: str, variants: list[str]) -> pd.DataFrame:
    """``variant,dice``: the headline test Dice of every variant of ``dataset`` with metrics."""
    means = headline_means(metrics[metrics["dataset"] == dataset]).get(dataset, {})
    rows = [{"variant": v, "dice": means[v]["dice"]} for v in variants if v in means]
    return pd.DataFrame(rows, columns=["variant", "dice"])


def write_plot_tables(
    histories: dict[RunKey, pd.DataFrame], metrics: pd.DataFrame, datasets: list[str], variants: list[str], out: Path
) -> list[Path]:
    """Write both tables of every data set into ``out`` (the summary's ``plots/``); returns the files."""
    written = []
    for ds in datasets:
        curves = out / f"{ds}_learning_curves.csv"
        write_csv(learning_curve_table(histories, ds, variants), curves)
        dice = out / f"{ds}_test_dice.csv"
        write_csv(dice_table(metrics, ds, variants), dice)
        written += [curves, dice]
    return written


# --------------------------------------------------------------------------- the offline page
PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC plots (jointseg)</title>
<!-- vega, vega-lite, vega-embed inlined from django-js-lib-vega-embed: the page needs no network -->
{scripts}
<style>
body {{font-family: sans-serif; margin: 1em}}
body > div {{display: inline-block; vertical-align: top; margin: 0 1.5em 1.5em 0}}
</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def vega_scripts() -> str:
    """The three ``<script>`` elements with the libraries' code inline."""
    folder = files(VEGA_PACKAGE).joinpath("static", VEGA_PACKAGE)
    blocks = []
    for name in VEGA_SCRIPTS:
        code = (
            folder.joinpath(name).read_text(encoding="utf-8").replace("</script", "<\\/script")
        )  # would end the element
        blocks.append(f"<script>/* {name} */\n{code}\n</script>")
    return "\n".join(blocks)


def write_page_template(out: str | Path) -> Path:
    """Write the HTML template for ``dvc plots show`` (``{plot_divs}`` is DVC's placeholder; the page
    has no ``{scripts}`` one, so DVC adds no CDN script)."""
    text = PAGE.format(scripts=vega_scripts())
    for placeholder in ("{scripts}", "{plot_divs}", "{refresh_tag}"):
        if text.count(placeholder) != (0 if placeholder == "{scripts}" else 1):
            raise UserError(f"{out}: the inlined libraries contain DVC's placeholder {placeholder}; not written")
    atomic_write_text(out, text)
    return Path(out)
