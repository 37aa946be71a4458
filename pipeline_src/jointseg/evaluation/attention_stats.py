"""``jointseg attention-stats``: how local one run's attention is, per test query.

    jointseg attention-stats --checkpoint results/S/D/V/seed0/checkpoints/final.pt \\
        --prepared data/prepared/D/KEY --out results/S/D/V/seed0/attention_stats.csv

The prepared test split (the arrays the network reads) is the input: a 2-D case is
one image; a 3-D case gives up to ``--slices`` of its slices that have foreground at
the attention grid's resolution, evenly spread. The block is built for one feature
size, so every image goes through the network as one window of the training size
(a larger slice is cropped around its foreground, a smaller one zero-padded).
Per image, ``--queries`` foreground and ``--queries`` background grid cells are drawn
from the *reference* label (:func:`.attention_measures.query_rng`: the same queries
for every variant and seed), and each branch's map of each query is measured
(:mod:`.attention_measures`). One row per image, query and branch (:data:`COLUMNS`).

A block without positional maps (``has_attention_map`` false, e.g. CBAM's channel/spatial gates)
gets a file with the header only and a note; a network without a block is an error.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..attention import has_attention_map
from ..data.loader import eval_cases, read_manifest
from ..device import resolve_threads, select_device, set_threads
from ..io_utils import UserError, atomic_path
from ..models.checkpoint import load_checkpoint, model_from_checkpoint
from . import attention_measures as am

COLUMNS: tuple[str, ...] = (
    "dataset",
    "variant",
    "seed",
    "case",
    "slice",
    "query",
    "kind",
    "class",
    "qh",
    "qw",
    "branch",
    "unit",
    "distance",
    "uniform_distance",
    "area",
    "object_mass",
    "object_fraction",
)


def spread(items: list, n: int | None) -> list:
    """``n`` items evenly spread over ``items`` (all of them when ``n`` is None or larger)."""
    if n is None or len(items) <= n:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def window(image: np.ndarray, label: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(C, H, W)`` image and ``(H, W)`` label cut (around the label's foreground) or zero-padded to ``size``."""
    centre = np.argwhere(label > 0).mean(0) if (label > 0).any() else np.array(label.shape) / 2
    for axis, target in enumerate(size):
        n = label.shape[axis]
        if n > target:
            start = int(min(max(round(centre[axis] - target / 2), 0), n - target))
            image = np.take(image, range(start, start + target), axis=axis + 1)
            label = np.take(label, range(start, start + target), axis=axis)
        elif n < target:
            before = (target - n) // 2
            pad = [(0, 0)] * 3
            pad[axis + 1] = (before, target - n - before)
            image, label = np.pad(image, pad), np.pad(label, pad[1:])
    return image, label


def stat_images(
    prepared: str | Path, size: tuple[int, int], grid: tuple[int, int], stride: int, settings: dict
) -> Iterator[tuple[str, int, np.ndarray, np.ndarray, dict]]:
    """``(case, slice, image (C,h,w), grid labels (gh,gw), case record)`` of the chosen test images."""
    manifest = read_manifest(prepared)
    records = {c["id"]: c for c in manifest["cases"] if c["split"] == "test"}
    chosen = set(spread(sorted(records), settings["max_cases"]))
    for case, images, labels in eval_cases(prepared, "test"):
        if case not in chosen:
            continue
        cut = [window(images[s], labels[s], size) for s in range(len(images))]
        cells = [am.grid_labels(lab, grid, stride) for _, lab in cut]
        with_fg = [s for s in range(len(cut)) if (cells[s] > 0).any()]
        slices = spread(with_fg, settings["slices"]) if with_fg else [len(cut) // 2]
        for s in slices:
            yield case, s, cut[s][0], cells[s], records[case]


def capture_features(model: Any, x: Any) -> Any:
    """The attention block's input for ``x``: one forward pass (eval mode, no gradients)."""
    captured = []
    handle = model.attention.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return captured[0]


def image_rows(model: Any, x: Any, cells: np.ndarray, queries: list, steps: tuple[float, float]) -> list[dict]:
    """Measures of every query and branch on one image (``x``: (1, C, h, w) on the model's device)."""
    block = model.attention
    branches = list(block.branches)
    features = capture_features(model, x)
    rows = []
    for index, (kind, qh, qw) in enumerate(queries):
        with torch.no_grad():
            maps = block.attention_map(features, (qh, qw))[0].float().cpu().numpy()  # (B, gh, gw)
        obj = am.own_object(cells, (qh, qw)) if kind == "foreground" else None
        uniform = float(am.distances_from((qh, qw), cells.shape, steps).mean())
        for b, prob in enumerate(maps):
            rows.append(
                {
                    "query": index,
                    "kind": kind,
                    "class": int(cells[qh, qw]),
                    "qh": qh,
                    "qw": qw,
                    "branch": branches[b],
                    "uniform_distance": uniform,
                    "object_fraction": float(obj.mean()) if obj is not None else float("nan"),
                    **am.map_measures(prob, (qh, qw), steps, obj),
                }
            )
    return rows


def _stride(model: Any, size: tuple[int, int]) -> int:
    grid = tuple(model.attention_grid)
    return int(getattr(model, "attention_stride", None) or size[0] // grid[0])


def attention_stats(
    checkpoint: str | Path, prepared: str | Path, settings: dict, device_spec: str = "auto", threads: int | None = None
) -> list[dict]:
    """Every query's measures for one run, rows of :data:`COLUMNS` (``settings``: queries, max_cases, slices, seed).

    ``threads``: CPU threads while it runs (default ``$OMP_NUM_THREADS``, else all; restored afterwards).
    """
    old = torch.get_num_threads()
    set_threads(resolve_threads(threads))
    try:
        return _run_rows(checkpoint, prepared, settings, device_spec)
    finally:
        torch.set_num_threads(old)


def _run_rows(checkpoint: str | Path, prepared: str | Path, settings: dict, device_spec: str) -> list[dict]:
    ckpt = load_checkpoint(checkpoint)
    run = ckpt.get("config", {})
    device = select_device(device_spec)
    model = model_from_checkpoint(ckpt, device)
    if getattr(model, "attention", None) is None:
        raise UserError(f"{checkpoint}: this network has no attention block; attention statistics need one")
    identity = {k: run.get(k) for k in ("dataset", "variant", "seed")}
    if None in identity.values():
        raise UserError(
            f"{checkpoint}: the checkpoint has no run config (dataset, variant, seed); use one from training"
        )
    if not has_attention_map(model.attention):
        print(
            f"jointseg attention-stats: note: {checkpoint}: its block has no positional map; no rows", file=sys.stderr
        )
        return []
    size = tuple(int(s) for s in ckpt["model_kwargs"]["input_size"])
    grid, stride = tuple(model.attention_grid), _stride(model, size)
    spec = ckpt["preprocess"]
    rows = []
    for case, s, image, cells, record in stat_images(prepared, size, grid, stride, settings):
        spacing = am.inplane_spacing(record, int(spec["slice_axis"])) if int(spec["ndim"]) == 3 else None
        queries = am.sample_queries(cells, settings["queries"], am.query_rng(settings["seed"], case, s))
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None].to(device)
        unit = "px" if spacing is None else "mm"
        for row in image_rows(model, x, cells, queries, am.grid_steps(stride, spacing)):
            rows.append({**identity, "case": case, "slice": s, "unit": unit, **row})
    return rows


def write_rows(rows: list[dict], path: str | Path) -> None:
    """The per-query CSV (floats to 6 significant digits), atomically; pandas stays out of this job."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
