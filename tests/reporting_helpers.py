"""Builders of fake studies for the reporting tests: metrics, run configs, manifests, histories, checkpoints.

Per-case values are chosen so that every summary number is a hand computation:
seeds are ±0.1 around known per-case Dice values, distances are integers, and
each case's image diagonal is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from jointseg import paths
from jointseg.config import load_config, preparation_key, resolve_run
from jointseg.evaluation.evaluate import columns, write_metrics
from jointseg.reporting.dvc_plots import write_plot_tables

JOINT = np.array([0.81, 0.72, 0.60, 0.94, 0.55, 0.86])
DIFF = np.array([0.01, 0.02, -0.03, 0.04, 0.05, 0.06])
CASES = [f"c{i}" for i in range(6)]
HD = np.array([2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
# image diagonals (px) of the six cases: photographs of several sizes, the last one 200 x 100
DIAGONALS = np.array([100.0, 150.0, 200.0, 250.0, 300.0, float(np.hypot(200, 100))])
VARIANTS = ["pointwise", "self", "joint"]
PLOT_VARIANTS = ["none", "pointwise", "self", "joint"]  # the demo's DenseUNet variants


def metrics_frame(
    dataset: str, variant: str, seed: int, dice, hd, klass: int = 1, cases=CASES, diagonal=DIAGONALS, unit: str = "px"
) -> pd.DataFrame:
    """A ``metrics.csv`` table with the columns ``jointseg evaluate`` writes."""
    dice = np.asarray(dice, dtype=float)
    return pd.DataFrame(
        {
            "dataset": dataset,
            "variant": variant,
            "seed": seed,
            "case": list(cases),
            "class": klass,
            "dice": dice,
            "iou": dice / (2 - dice),
            "hd95": hd,
            "assd": np.asarray(hd) / 2,
            "sensitivity": dice,
            "specificity": 0.99,
            "precision": dice,
            "diagonal": diagonal,
            "unit": unit,
        }
    )[list(columns())]


def write_config(root: Path, with_msd: bool = False) -> Path:
    """A study config with data set ``toy2d`` (and ``toy3d``), three variants, two seeds."""
    datasets = {
        "toy2d": {
            "format": "isic",
            "sources": [{"url": "x.zip"}],
            "size": [64, 64],
            "labels": {"0": "background", "1": "lesion"},
        }
    }
    if with_msd:
        datasets["toy3d"] = {
            "format": "msd",
            "sources": [{"url": "x.tar"}],
            "size": [64, 64],
            "slice_axis": 2,
            "labels": {"0": "background", "1": "anterior", "2": "posterior"},
        }
    cfg = {
        "study": "toy",
        "seeds": [0, 1],
        "variants": VARIANTS,
        "reference_variant": "joint",
        "datasets": datasets,
        "data_dir": str(root / "data"),
        "results_dir": str(root / "results"),
        "model": {"arch": "unet", "preset": "small", "attention_level": 8},
        "train": {"iterations": 100, "loss": "ce", "scheduler": "constant", "lr": 0.0005},
        "variant_overrides": {"self": {"train": {"augment": {"enabled": False}}}},
        "report": {"bootstrap": 200, "qualitative_cases": 2, "attention_queries": 2},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def manifest(dataset: str, ndim: int = 2) -> dict:
    """The manifest keys reporting reads (``dataset``, channels, classes, labels, slice axis)."""
    if ndim == 2:
        return {
            "dataset": dataset,
            "format": "isic",
            "ndim": 2,
            "in_channels": 3,
            "num_classes": 2,
            "labels": {"0": "background", "1": "lesion"},
            "preprocess": {"ndim": 2},
        }
    return {
        "dataset": dataset,
        "format": "msd",
        "ndim": 3,
        "in_channels": 1,
        "num_classes": 3,
        "labels": {"0": "background", "1": "anterior", "2": "posterior"},
        "preprocess": {"ndim": 3, "slice_axis": 2},
    }


def prepared_folder(config: dict, dataset: str) -> Path:
    """Where the workflow keeps ``dataset``'s prepared data under ``config`` (its run configs' ``prepared_dir``)."""
    return paths.prepared_dir(config["data_dir"], dataset, preparation_key(config["datasets"][dataset]))


def write_json(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def write_run_files(root: Path, config: dict, ds: str, variant: str, seed: int, steps_scale: float = 20.0) -> dict:
    """``run_config.json`` and ``history.csv`` of one run under ``root``; returns their paths."""
    run = root / "results" / ds / variant / f"seed{seed}"
    rc = write_json(run / "run_config.json", resolve_run(config, ds, variant, seed))
    steps = np.arange(0, 101, 10)
    pd.DataFrame(
        {
            "step": steps,
            "loss": 1.0 / (1 + steps / steps_scale),
            "val_dice": np.where(steps % 50 == 0, 0.5 + steps / 250, np.nan),
        }
    ).to_csv(run / "history.csv", index=False)
    return {"run_config": rc, "history": run / "history.csv", "run": run}


def fake_study(root: Path) -> dict:
    """Metrics, run configs, histories and a manifest of data set ``toy2d``: 3 variants x 2 seeds.

    ``pointwise`` is the reference minus DIFF; its HD95 is undefined (one mask empty) for
    case c0 in both seeds and for c1 in seed 0. ``self`` equals the reference per case.
    """
    cfg_path = write_config(root)
    config = load_config(cfg_path)
    files: dict[str, list] = {"metrics": [], "run_configs": [], "histories": []}
    for variant, base in (("joint", JOINT), ("pointwise", JOINT - DIFF), ("self", JOINT)):
        for seed, delta in ((0, -0.1), (1, 0.1)):
            h = HD.copy() + (1.0 if variant == "pointwise" else 0.0)
            if variant == "pointwise":
                h[0] = np.nan
                if seed == 0:
                    h[1] = np.nan
            run = write_run_files(root, config, "toy2d", variant, seed)
            metrics = run["run"] / "metrics.csv"
            write_metrics(metrics_frame("toy2d", variant, seed, base + delta, h), metrics)
            files["metrics"].append(metrics)
            files["run_configs"].append(run["run_config"])
            files["histories"].append(run["history"])
    files["manifests"] = [write_json(prepared_folder(config, "toy2d") / "manifest.json", manifest("toy2d"))]
    return {"config": cfg_path, **files}


def cli_args(study: dict, out: Path, *extra: str) -> list[str]:
    """``jointseg aggregate`` arguments for a :func:`fake_study`."""
    args = ["aggregate", "--config", str(study["config"]), "--out", str(out), "--no-mlflow"]
    for key in ("metrics", "run_configs", "histories", "manifests"):
        if study.get(key):
            args += [f"--{key.replace('_', '-')}", *map(str, study[key])]
    return args + list(extra)


def demo_plot_tables(out: Path, datasets: tuple[str, ...], variants: list[str]) -> None:
    """The plot tables `jointseg aggregate` writes, from two seeds per variant."""
    steps = np.arange(1, 151)
    histories, rows = {}, []
    for d_i, ds in enumerate(datasets):
        for v_i, v in enumerate(variants):
            for seed in (0, 1):
                val = np.where(steps % 50 == 0, 0.3 + 0.1 * v_i + 0.002 * steps + 0.01 * seed, np.nan)
                histories[(ds, v, seed)] = pd.DataFrame({"step": steps, "loss": 1.0 / steps, "val_dice": val})
                rows.append({"dataset": ds, "variant": v, "seed": seed, "case": "c0", "class": 1})
                rows[-1] |= {"dice": 0.5 + 0.1 * v_i + 0.01 * d_i, "iou": 0.4, "hd95": 2.0, "assd": 1.0}
    write_plot_tables(histories, pd.DataFrame(rows), list(datasets), variants, out)
