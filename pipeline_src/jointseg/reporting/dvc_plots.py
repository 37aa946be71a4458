"""Plain CSV tables under ``<summary>/plots/`` for ``dvc plots show`` (the top-level ``plots:`` of dvc.yaml).

Per data set:

``<ds>_learning_curves.csv``
    wide: ``step`` and one column per variant holding the validation Dice at
    that step, averaged over the seeds that validated there (empty where no
    seed of the variant did). DVC draws one line per y column, so one line per
    variant.
``<ds>_test_dice.csv``
    ``variant,dice``: test Dice per variant, the same number as ``metrics.json``
    (:func:`.headline.headline_means`: per run the mean over cases and classes,
    then the mean over seeds).

Rows follow the study's order (variants as in the config, steps ascending) and
numbers have a fixed format, so identical inputs give byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .collect import RunKey
from .headline import headline_means
from .tables import write_csv


def learning_curve_table(histories: dict[RunKey, pd.DataFrame], dataset: str, variants: list[str]) -> pd.DataFrame:
    """``step`` plus one column per variant: the seed-mean validation Dice at each validated step."""
    columns: dict[str, pd.Series] = {}
    for variant in variants:
        runs = [
            h[["step", "val_dice"]].dropna()
            for (ds, v, _), h in histories.items()
            if ds == dataset and v == variant and "val_dice" in h
        ]
        runs = [r for r in runs if not r.empty]
        if runs:
            columns[variant] = pd.concat(runs).groupby("step")["val_dice"].mean()
    if not columns:
        return pd.DataFrame(columns=["step"])
    table = pd.DataFrame(columns).sort_index()
    table.index = table.index.astype(int)
    return table.rename_axis("step").reset_index()


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
