"""Headline means of every data set x variant, as a small JSON for `dvc metrics`.

    python workflow/scripts/headline_metrics.py --results results --out results/summary/metrics.json \
        results/<dataset>/<variant>/seed<k>/metrics.csv ...

Reads the per-case ``metrics.csv`` files (the package's contract: one row per
case and foreground class) and writes ``{dataset: {variant: {dice, iou, hd95,
assd, runs}}}``: the mean over cases and classes of each run, then the mean over
seeds. NaN distances (one mask empty) are excluded, as in the summary tables.
Values are rounded to 6 digits so ``dvc metrics diff`` shows real changes only.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from jointseg.io_utils import UserError, atomic_write_json

HEADLINE = ("dice", "iou", "hd95", "assd")


def headline(paths: list[Path], results: Path) -> dict:
    """``{dataset: {variant: {metric: mean, "runs": n}}}`` from per-run metrics files."""
    per_run: dict[tuple[str, str], list[dict[str, float]]] = {}
    for path in paths:
        parts = path.relative_to(results).parts  # dataset/variant/seed<k>/metrics.csv
        if len(parts) != 4:
            raise UserError(f"{path}: expected {results}/<dataset>/<variant>/seed<k>/metrics.csv")
        table = pd.read_csv(path, dtype={"case": str})
        missing = [m for m in HEADLINE if m not in table.columns]
        if missing:
            raise UserError(f"{path}: missing columns {missing}; rerun 'jointseg evaluate'")
        per_run.setdefault((parts[0], parts[1]), []).append(
            {m: float(table[m].mean(skipna=True)) for m in HEADLINE}
        )
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (dataset, variant), runs in sorted(per_run.items()):
        means = {}
        for m in HEADLINE:
            values = [r[m] for r in runs if not math.isnan(r[m])]
            means[m] = round(sum(values) / len(values), 6) if values else None
        out.setdefault(dataset, {})[variant] = {**means, "runs": len(runs)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("metrics", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        atomic_write_json(args.out, headline(args.metrics, args.results))
    except UserError as exc:
        print(f"headline_metrics: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
