"""Read the inputs of a summary, each given as an explicit path (nothing is found by convention).

Every input says what it is in its own data, never in its path:

- ``metrics.csv``: the ``dataset, variant, seed`` columns (``jointseg evaluate``);
- ``run_config.json``: its ``dataset``, ``variant`` and ``seed`` keys;
- ``history.csv``: belongs to the run config at the same position of the list;
- ``manifest.json``: its ``dataset`` key; the test image and label folders
  belong to the manifest at the same position;
- checkpoints: their ``config`` (the run config they were trained with); the
  prediction folder belongs to the checkpoint at the same position.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..config import run_names
from ..evaluation.evaluate import read_metrics
from ..io_utils import UserError

RunKey = tuple[str, str, int]
"""``(dataset, variant, seed)`` of one training run."""


@dataclass
class StudyInputs:
    """Everything a summary reads, keyed by what each input says it is."""

    metrics: pd.DataFrame
    run_configs: dict[RunKey, dict]
    manifests: dict[str, dict]
    manifest_paths: dict[str, Path]
    histories: dict[RunKey, pd.DataFrame] = field(default_factory=dict)
    test_dirs: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # dataset -> (images, labels)
    checkpoints: list[tuple[Path, Path | None]] = field(default_factory=list)  # (checkpoint, predictions)


def _paired(what: str, items: Sequence, owners: str, n: int) -> None:
    if items and len(items) != n:
        raise UserError(f"{len(items)} {what} for {n} {owners}; give one per {owners[:-1]}, in the same order")


def read_metrics_files(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Concatenate metrics files; :class:`UserError` if one run appears in two files or units disagree."""
    if not paths:
        raise UserError("no metrics files given; pass --metrics FILE ...")
    frames, source = [], {}
    for path in paths:
        df = read_metrics(path)
        for key in df[["dataset", "variant", "seed"]].drop_duplicates().itertuples(index=False):
            key = (str(key[0]), str(key[1]), int(key[2]))
            if key in source:
                raise UserError(f"{path}: run {key} is also in {source[key]}; give each run's metrics once")
            source[key] = path
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    units = df.groupby("dataset")["unit"].unique()
    mixed = {ds: sorted(u) for ds, u in units.items() if len(u) > 1}
    if mixed:
        raise UserError(
            f"distance units differ within a data set {mixed}; evaluate every run against the same reference files"
        )
    return df


def _read_json(path: str | Path, what: str, keys: Sequence[str]) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except ValueError as exc:
        raise UserError(f"{path}: {what} is not valid JSON ({exc})") from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise UserError(f"{path}: not a {what} (missing {missing})")
    return data


def read_run_configs(paths: Sequence[str | Path]) -> dict[RunKey, dict]:
    """``{(dataset, variant, seed): run config}`` from ``run_config.json`` files."""
    out: dict[RunKey, dict] = {}
    for path in paths:
        rc = _read_json(path, "run config", ("dataset", "variant", "seed", "model", "train", "size"))
        key = (str(rc["dataset"]), str(rc["variant"]), int(rc["seed"]))
        if key in out:
            raise UserError(f"{path}: a second run config for {key}")
        out[key] = rc
    return out


def read_manifests(paths: Sequence[str | Path]) -> tuple[dict[str, dict], dict[str, Path]]:
    """``({dataset: manifest}, {dataset: path})`` from prepared ``manifest.json`` files."""
    manifests: dict[str, dict] = {}
    where: dict[str, Path] = {}
    for path in paths:
        m = _read_json(path, "prepared-data manifest", ("dataset", "in_channels", "num_classes"))
        if m["dataset"] in manifests:
            raise UserError(f"{path}: a second manifest for data set '{m['dataset']}'")
        manifests[m["dataset"]], where[m["dataset"]] = m, Path(path)
    return manifests, where


def read_histories(paths: Sequence[str | Path], keys: Sequence[RunKey]) -> dict[RunKey, pd.DataFrame]:
    """``history.csv`` files, the i-th belonging to the i-th run config."""
    _paired("history files", paths, "run configs", len(keys))
    out = {}
    for path, key in zip(paths, keys):
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: history file not found; train run {key} first")
        out[key] = pd.read_csv(path)
    return out


def check_coverage(inputs: StudyInputs) -> None:
    """Every run in the metrics has a run config, every data set a manifest."""
    runs = {
        (str(d), str(v), int(s))
        for d, v, s in inputs.metrics[["dataset", "variant", "seed"]].drop_duplicates().itertuples(index=False)
    }
    no_config = sorted(runs - set(inputs.run_configs))
    if no_config:
        raise UserError(
            f"no run config given for {len(no_config)} run(s) with metrics, e.g. {no_config[:3]}; "
            "pass each run's run_config.json with --run-configs"
        )
    no_manifest = sorted({d for d, _, _ in runs} - set(inputs.manifests))
    if no_manifest:
        raise UserError(f"no manifest given for data set(s) {no_manifest}; pass them with --manifests")


def collect(
    metrics: Sequence[str | Path],
    run_configs: Sequence[str | Path],
    manifests: Sequence[str | Path],
    histories: Sequence[str | Path] = (),
    test_images: Sequence[str | Path] = (),
    test_labels: Sequence[str | Path] = (),
    checkpoints: Sequence[str | Path] = (),
    predictions: Sequence[str | Path] = (),
) -> StudyInputs:
    """Read every input of a summary; lists that pair up must have equal lengths."""
    configs = read_run_configs(run_configs)
    manifest_data, manifest_paths = read_manifests(manifests)
    _paired("test image folders", test_images, "manifests", len(manifests))
    _paired("test label folders", test_labels, "manifests", len(manifests))
    _paired("prediction folders", predictions, "checkpoints", len(checkpoints))
    order = list(manifest_data)
    test_dirs = {ds: (Path(i), Path(lab)) for ds, i, lab in zip(order, test_images, test_labels)}
    preds: list[Path | None] = [Path(p) for p in predictions] or [None] * len(checkpoints)
    inputs = StudyInputs(
        metrics=read_metrics_files(metrics),
        run_configs=configs,
        manifests=manifest_data,
        manifest_paths=manifest_paths,
        histories=read_histories(histories, list(configs)),
        test_dirs=test_dirs,
        checkpoints=[(Path(c), p) for c, p in zip(checkpoints, preds)],
    )
    check_coverage(inputs)
    return inputs


def orders(df: pd.DataFrame, config: dict) -> tuple[list[str], list[str]]:
    """Data sets and variants present in ``df``: config order first, then any others sorted."""
    datasets = [d for d in config["datasets"] if d in set(df["dataset"])]
    datasets += sorted(set(df["dataset"]) - set(datasets))
    variants = [v for v in run_names(config) if v in set(df["variant"])]
    variants += sorted(set(df["variant"]) - set(variants))
    return datasets, variants


def class_names(manifests: dict[str, dict]) -> dict[str, dict[int, str]]:
    """``{dataset: {class index: name}}`` from the manifests' ``labels``."""
    return {ds: {int(k): str(v) for k, v in m.get("labels", {}).items()} for ds, m in manifests.items()}


def units(df: pd.DataFrame) -> dict[str, str]:
    """``{dataset: "mm" | "px"}``: the distance unit its metrics files report."""
    return {str(ds): str(u.iloc[0]) for ds, u in df.groupby("dataset")["unit"]}
