"""Throughput of jointseg.data.loader.TrainBatches on the demo data sets.

    PYTHONPATH=pipeline_src .venv/bin/python bench/bench_loader.py [--batches 200] [--workdir /tmp/jointseg-bench]

Downloads (from the embedded archives) and prepares demo_isic and demo_msd
into --workdir if needed, then times batches of 4 at 64x64 with the demo
config's augmentation, in the main process (no workers). Training the small
model consumes roughly 20 images/s on 2 CPU cores; the loader should give
at least 10x that from one core.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from jointseg.config import load_config
from jointseg.data.download import download_dataset
from jointseg.data.loader import TrainBatches
from jointseg.data.prepare import Settings, prepare
from jointseg.data.sources import sources_of

ROOT = Path(__file__).resolve().parents[1]


def ensure_prepared(name: str, config: dict, work: Path) -> Path:
    entry = config["datasets"][name]
    raw, out = work / "raw" / name, work / "prepared" / name
    if not (out / "manifest.json").exists():
        download_dataset(name, sources_of(entry), raw, lock=ROOT / entry["lock_file"], search=[ROOT])
        prepare(
            raw,
            out,
            Settings(
                dataset=name,
                format=entry["format"],
                size=tuple(entry["size"]),
                slice_axis=entry["slice_axis"],
                labels=entry["labels"],
                split_rule=entry["split"]["rule"],
                seed=entry["split"]["seed"],
                fractions=tuple(entry["split"]["fractions"]),
            ),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workdir", default="/tmp/jointseg-bench")
    args = parser.parse_args()
    config = load_config(ROOT / "config" / "config.yaml")
    augment = config["train"]["augment"]
    rows = []
    for name in ("demo_isic", "demo_msd"):
        out = ensure_prepared(name, config, Path(args.workdir))
        for label, aug in (("augmented", augment), ("no augment", None)):
            batches = TrainBatches(out, "train", args.batch_size, (64, 64), aug, seed=0)
            batches[0]  # open the memory maps
            t0, c0 = time.perf_counter(), time.process_time()
            for t in range(args.batches):
                batches[t]
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            n_img = args.batches * args.batch_size
            rows.append((name, label, args.batches / dt, n_img / dt, n_img / dc))
    print(
        f"\nTrainBatches throughput, batch {args.batch_size} at 64x64, 1 process "
        f"({os.cpu_count()} CPUs on this machine); training needs ~20 images/s\n"
    )
    print("(images/CPU-s: images per second of this process's CPU time, robust on a busy machine)\n")
    print(
        f"| {'data set':<10} | {'augment':<10} | {'batches/s':>9} | {'images/s':>8} | {'x need':>6} "
        f"| {'images/CPU-s':>12} |"
    )
    print(f"|{'-' * 12}|{'-' * 12}|{'-' * 11}|{'-' * 10}|{'-' * 8}|{'-' * 14}|")
    for name, label, bps, ips, ipc in rows:
        print(f"| {name:<10} | {label:<10} | {bps:9.1f} | {ips:8.1f} | {ips / 20:6.1f} | {ipc:12.1f} |")


if __name__ == "__main__":
    main()
