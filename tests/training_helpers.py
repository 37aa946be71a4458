"""Builders shared by the training, recipe and predict tests: prepared demo data and tiny runs."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from jointseg.cli import main as cli_main
from jointseg.config import load_config, resolve_run

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "pipeline_src" / "jointseg" / "data" / "demo"
SIZE = 32
THREADS = 1  # one thread: no OpenMP spin-waiting when the test machine is busy


def prepare_demo(base: Path, datasets: tuple[str, ...] = ("demo_isic", "demo_msd")) -> Path:
    """Extract the embedded demo archives and ``jointseg prepare`` them at 32x32 under
    ``base/data/prepared/<dataset>`` (both, or the ``datasets`` named); returns ``base/data``."""
    raw = base / "raw"
    for archive in sorted((DEMO / "isic").glob("*.zip")):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(raw / "demo_isic")
    with tarfile.open(DEMO / "Task99_DemoHippocampus.tar") as tf:
        tf.extractall(raw / "demo_msd", filter="data")
    data = base / "data"
    for name, fmt in (("demo_isic", "isic"), ("demo_msd", "msd")):
        if name not in datasets:
            continue
        rc = cli_main(
            [
                "prepare",
                "--format",
                fmt,
                "--source",
                str(raw / name),
                "--out",
                str(data / "prepared" / name),
                "--size",
                str(SIZE),
            ]
        )
        assert rc == 0
    return data


def tiny_run_config(data: Path, dataset: str = "demo_isic", iterations: int = 6, **train) -> dict:
    """A resolved run config (through the real config path) for a tiny run."""
    overrides = {
        "data_dir": str(data),
        "datasets": {dataset: {"size": [SIZE, SIZE]}},
        "train": {
            "iterations": iterations,
            "batch_size": 2,
            "val_every": 3,
            "checkpoint_every": 2,
            "threads": THREADS,
            **train,
        },
    }
    config = load_config(ROOT / "config" / "config.yaml", overrides)
    return resolve_run(config, dataset, "joint", 0, prepared_dir=data / "prepared" / dataset)  # prepare_demo's


def run_train(rc: dict, out: Path, **kwargs) -> dict:
    from jointseg.training.loop import train

    return train(rc, out, tracking=False, progress=False, **kwargs)
