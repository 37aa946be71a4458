"""``jointseg prepare``: raw images/volumes -> arrays + manifest.json + splits.json.

    jointseg prepare DATASET --config config/config.yaml [--raw data/raw/DATASET] [--out data/prepared/DATASET]
    jointseg prepare --format {isic,msd} --source PATH --out DIR [--size N [N]] [--seed K]

Output (docs/design.md "Prepared data")::

    DIR/manifest.json     data set, label map, the preprocess spec, one record per case
    DIR/splits.json       {"seed", "rule", "train", "val", "test"}; reused on reruns when consistent
    DIR/arrays/<id>_image.npy, <id>_label.npy    (memory-mappable)
    DIR/test/images/<id>.<ext>, DIR/test/labels/<id>.<ext>   test cases on the original grid

Everything is written into a temporary sibling folder that is renamed onto DIR
at the very end, so a failure (bad input gets a :class:`UserError` naming the
file) leaves no folder that looks finished. The output bytes depend only on the
input bytes and the settings (sorted keys, no timestamps, sequential float
sums), so two runs are byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..io_utils import UserError, atomic_write_json
from . import isic, msd
from .msd import RawCase
from .preprocess import (SPEC_VERSION, canonical, check_finite, load_nifti, map_labels, read_mask,
                         read_rgb, resize_rgb, resize_label, save_prediction, to_slices, volume_from,
                         Inverse)


@dataclass
class Settings:
    """What ``prepare`` needs besides the raw folder (a data-set config entry, or CLI flags)."""

    dataset: str
    format: str
    size: tuple[int, int] = (64, 64)
    slice_axis: int = 2
    labels: dict | None = None            # None: the adapter's default / dataset.json
    split_rule: str | None = None         # None: official when the layout has one, else seeded
    seed: int = 0
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    extra: dict = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", nargs="?", help="data set name in the config's 'datasets'")
    parser.add_argument("--config", help="study config YAML (with DATASET)")
    parser.add_argument("--raw", help="raw folder (default <data_dir>/raw/DATASET)")
    parser.add_argument("--out", help="output folder (default <data_dir>/prepared/DATASET)")
    parser.add_argument("--format", choices=["isic", "msd"], help="without a config: the layout of --source")
    parser.add_argument("--source", help="without a config: the folder with the extracted raw data")
    parser.add_argument("--size", type=int, nargs="+", help="training size: N or H W (default 64)")
    parser.add_argument("--seed", type=int, help="split seed (default 0)")
    parser.add_argument("--split-rule", choices=["official", "seeded"], help="default: official if the layout has one")
    parser.add_argument("--slice-axis", type=int, choices=[0, 1, 2], help="3-D: canonical axis to slice along")


def _size(values: list[int] | None, default) -> tuple[int, int]:
    if not values:
        return tuple(default)  # type: ignore[return-value]
    if len(values) > 2:
        raise UserError("--size takes N or H W")
    return (values[0], values[-1])


def main(args: argparse.Namespace) -> int:
    if args.dataset:
        if not args.config:
            raise UserError("DATASET needs --config (or use --format F --source PATH --out DIR)")
        from ..config import load_dataset_entry

        config, entry = load_dataset_entry(args.config, args.dataset)
        raw = Path(args.raw or Path(config["data_dir"]) / "raw" / args.dataset)
        out = Path(args.out or Path(config["data_dir"]) / "prepared" / args.dataset)
        if not (raw / ".complete.json").exists():
            raise UserError(f"{raw}: not a complete download (no .complete.json); run "
                            f"`jointseg download {args.dataset} --config {args.config}` first")
        split = entry["split"]
        settings = Settings(
            dataset=args.dataset, format=entry["format"], size=_size(args.size, entry["size"]),
            slice_axis=entry["slice_axis"] if args.slice_axis is None else args.slice_axis,
            labels=dict(entry["labels"]), split_rule=args.split_rule or split["rule"],
            seed=split["seed"] if args.seed is None else args.seed, fractions=tuple(split["fractions"]),
        )
    else:
        if not (args.format and args.source and args.out):
            raise UserError("give DATASET --config FILE, or --format {isic,msd} --source PATH --out DIR")
        raw, out = Path(args.source), Path(args.out)
        settings = Settings(dataset=out.name, format=args.format, size=_size(args.size, (64, 64)),
                            slice_axis=2 if args.slice_axis is None else args.slice_axis,
                            split_rule=args.split_rule, seed=args.seed or 0)
    manifest = prepare(raw, out, settings)
    counts = {s: sum(c["split"] == s for c in manifest["cases"]) for s in ("train", "val", "test")}
    print(f"jointseg prepare: {settings.dataset}: {len(manifest['cases'])} cases {counts} -> {out}")
    return 0


# --------------------------------------------------------------------------- splits


def make_splits(cases: list[RawCase], rule: str, seed: int, fractions, previous: dict | None,
                source: Path) -> dict:
    """Assign every case to train/val/test (official from the layout, or seeded and stored)."""
    ids = sorted(c.id for c in cases)
    if rule == "official":
        missing = [c for c in cases if c.split not in ("train", "val", "test")]
        if missing:
            raise UserError(f"{missing[0].image}: no official split for this case (folder names give none); "
                            "use split rule 'seeded'")
        return {"rule": "official", "seed": seed,
                **{s: sorted(c.id for c in cases if c.split == s) for s in ("train", "val", "test")}}
    if previous is not None:
        same_ids = sorted(previous.get("train", []) + previous.get("val", []) + previous.get("test", [])) == ids
        if same_ids and previous.get("seed") == seed and previous.get("rule", "seeded") == "seeded":
            return {"rule": "seeded", "seed": seed, **{s: sorted(previous[s]) for s in ("train", "val", "test")}}
        print(f"jointseg prepare: stored splits.json does not match the cases/seed of {source}; making a new one")
    fr = np.asarray(fractions, np.float64)
    if fr.sum() <= 0:
        raise UserError(f"split fractions {list(fractions)} sum to 0")
    fr = fr / fr.sum()
    n = len(ids)
    n_train = int(round(fr[0] * n))
    n_val = int(round(fr[1] * n))
    if n >= 3:  # every split that is asked for gets at least one case
        n_train = max(n_train, 1 if fr[0] > 0 else 0)
        n_val = max(n_val, 1 if fr[1] > 0 else 0)
        n_val = min(n_val, n - n_train - (1 if fr[2] > 0 else 0))
    order = np.random.default_rng(seed).permutation(n)
    picked = [ids[i] for i in order]
    return {"rule": "seeded", "seed": seed, "train": sorted(picked[:n_train]),
            "val": sorted(picked[n_train:n_train + n_val]), "test": sorted(picked[n_train + n_val:])}


# --------------------------------------------------------------------------- 2-D


def _prepare_2d(cases, split_of, root: Path, tmp: Path, st: Settings, labels: dict) -> tuple[dict, list]:
    label_values = dict(isic.LABEL_VALUES)
    undeclared = sorted({str(v) for v in label_values.values()} - set(labels))
    if undeclared:
        raise UserError(f"data set '{st.dataset}': ISIC masks give classes {undeclared} missing from "
                        f"the label map {labels}; declare them")
    records, sums, sqs, count = [], np.zeros(3), np.zeros(3), 0
    for case in tqdm(cases, desc=f"prepare {st.dataset}", unit="case"):
        rgb = read_rgb(case.image)
        raw = read_mask(case.label)
        if raw.shape != rgb.shape[:2]:
            raise UserError(f"{case.label}: mask shape {raw.shape} differs from image {case.image.name} "
                            f"shape {rgb.shape[:2]}; fix or remove the pair")
        lab = map_labels(raw, label_values, case.label)
        img = resize_rgb(rgb, st.size)
        split = split_of[case.id]
        if split == "train":
            flat = img.reshape(-1, 3).astype(np.float64)
            sums += flat.sum(0)
            sqs += (flat ** 2).sum(0)
            count += flat.shape[0]
        np.save(tmp / "arrays" / f"{case.id}_image.npy", img)  # normalised in the second pass
        np.save(tmp / "arrays" / f"{case.id}_label.npy", resize_label(lab, st.size))
        if split == "test":
            shutil.copyfile(case.image, tmp / "test" / "images" / f"{case.id}{case.image.suffix.lower()}")
            save_prediction(lab, Inverse(ndim=2, shape=lab.shape, source=str(case.label)),
                            tmp / "test" / "labels" / f"{case.id}.png")
        records.append({
            "id": case.id, "split": split,
            "image": f"arrays/{case.id}_image.npy", "label": f"arrays/{case.id}_label.npy",
            "source_image": case.image.relative_to(root).as_posix(),
            "source_label": case.label.relative_to(root).as_posix(),
            "shape": list(rgb.shape[:2]), "spacing": None,
            "label_values": sorted(int(v) for v in np.unique(lab)),
        })
    if count == 0:
        raise UserError(f"{root}: no training cases; cannot compute normalisation statistics")
    mean = sums / count
    std = np.sqrt(np.maximum(sqs / count - mean ** 2, 1e-12))
    spec = {"version": SPEC_VERSION, "format": "isic", "ndim": 2, "size": list(st.size), "in_channels": 3,
            "mean": [float(m) for m in mean], "std": [float(s) for s in std],
            "resize": {"image_order": 1, "anti_aliasing": True, "box_prereduce": True, "label_order": 0},
            "label_values": label_values}
    mean32, std32 = np.asarray(spec["mean"], np.float32), np.asarray(spec["std"], np.float32)
    for rec in records:
        path = tmp / rec["image"]
        img = np.load(path)
        np.save(path, np.ascontiguousarray(((img - mean32) / std32).transpose(2, 0, 1), dtype=np.float32))
    return spec, records


# --------------------------------------------------------------------------- 3-D


def _prepare_3d(cases, split_of, root: Path, tmp: Path, st: Settings, labels: dict) -> tuple[dict, list]:
    spec = {"version": SPEC_VERSION, "format": "msd", "ndim": 3, "size": list(st.size), "in_channels": 1,
            "slice_axis": st.slice_axis, "orientation": "RAS", "normalization": "zscore_nonzero",
            "pad_value": 0.0}
    identity = {k: int(k) for k in labels}
    records = []
    for case in tqdm(cases, desc=f"prepare {st.dataset}", unit="case"):
        img, data = load_nifti(case.image)
        lab_img, lab = load_nifti(case.label)
        if lab.shape != data.shape:
            raise UserError(f"{case.label}: label shape {lab.shape} differs from image {case.image.name} "
                            f"shape {data.shape}; fix or remove the pair")
        if not np.allclose(lab_img.affine, img.affine, rtol=0, atol=1e-3):
            raise UserError(f"{case.label}: label affine differs from the image's ({case.image.name}); "
                            "the label is not on the image grid - fix the header or resample the label")
        check_finite(lab, case.label)
        if np.issubdtype(lab.dtype, np.floating) and not np.array_equal(lab, np.round(lab)):
            raise UserError(f"{case.label}: label has non-integer values; labels must be class indices")
        lab = map_labels(np.round(lab).astype(np.int64), identity, case.label)
        slices, inverse = volume_from(img, data, case.image, spec)
        lab_slices = to_slices(canonical(lab_img, lab)[0], st.slice_axis, inverse.pad)
        np.save(tmp / "arrays" / f"{case.id}_image.npy", slices)
        np.save(tmp / "arrays" / f"{case.id}_label.npy", lab_slices)
        split = split_of[case.id]
        if split == "test":
            ext = ".nii.gz" if case.image.name.endswith(".gz") else ".nii"
            shutil.copyfile(case.image, tmp / "test" / "images" / f"{case.id}{ext}")
            shutil.copyfile(case.label, tmp / "test" / "labels" / f"{case.id}{ext}")
        records.append({
            "id": case.id, "split": split,
            "image": f"arrays/{case.id}_image.npy", "label": f"arrays/{case.id}_label.npy",
            "source_image": case.image.relative_to(root).as_posix(),
            "source_label": case.label.relative_to(root).as_posix(),
            "shape": list(inverse.shape),
            "spacing": [float(z) for z in img.header.get_zooms()[:3]],
            "affine": [[float(v) for v in row] for row in inverse.affine],
            "canonical_shape": list(inverse.canonical_shape),
            "padded_shape": list(slices.shape[2:]),
            "pad": [list(p) for p in inverse.pad],
            "slices": int(slices.shape[0]),
            "foreground_slices": [int(i) for i in np.flatnonzero(lab_slices.reshape(len(lab_slices), -1).any(1))],
            "label_values": sorted(int(v) for v in np.unique(lab)),
        })
    return spec, records


# --------------------------------------------------------------------------- driver


def _load_previous_splits(out: Path) -> dict | None:
    path = out / "splits.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def prepare(source: str | os.PathLike, out: str | os.PathLike, st: Settings) -> dict:
    """Prepare the raw data under ``source`` into ``out``; return the manifest."""
    source, out = Path(source), Path(out)
    if st.format == "isic":
        cases = isic.find_cases(source)
        labels = st.labels or dict(isic.DEFAULT_LABELS)
    elif st.format == "msd":
        cases, meta = msd.find_cases(source)
        labels = st.labels or {str(k): str(v) for k, v in meta.get("labels", {"0": "background",
                                                                              "1": "foreground"}).items()}
    else:
        raise UserError(f"unknown format '{st.format}'; choose isic or msd")
    rule = st.split_rule or ("official" if all(c.split for c in cases) else "seeded")
    splits = make_splits(cases, rule, st.seed, st.fractions, _load_previous_splits(out), source)
    split_of = {cid: s for s in ("train", "val", "test") for cid in splits[s]}

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for sub in ("arrays", "test/images", "test/labels"):
            (tmp / sub).mkdir(parents=True)
        worker = _prepare_2d if st.format == "isic" else _prepare_3d
        spec, records = worker(cases, split_of, source, tmp, st, labels)
        spec["labels"] = labels
        ndim = spec["ndim"]
        manifest = {
            "dataset": st.dataset, "format": st.format, "ndim": ndim, "in_channels": spec["in_channels"],
            "num_classes": len(labels), "labels": labels, "size": list(st.size), "preprocess": spec,
            "split": {"rule": splits["rule"], "seed": splits["seed"]},
            "cases": sorted(records, key=lambda r: r["id"]),
        }
        atomic_write_json(tmp / "splits.json", splits)
        atomic_write_json(tmp / "manifest.json", manifest)  # last: marks the folder complete
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):  # disk full, permissions: not a bug, say what to do
            raise UserError(f"cannot write the prepared data for {out} ({exc}); free disk space or "
                            "fix permissions, or choose another --out") from None
        raise
    return manifest
