"""Draw every summary figure from the collected inputs; say what could not be drawn and why.

Per data set: ``<ds>_boxplots.png`` (per-case metrics), ``<ds>_learning_curves.png``
(the given ``history.csv`` files), ``<ds>_qualitative.png`` (test cases, the
prediction folders given with the checkpoints) and ``<ds>_attention_<variant>.png``
(each attention variant's maps, from its checkpoint: one figure per variant keeps
every figure short enough to read whole). Where several seeds of a variant have a
checkpoint, the smallest seed is shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..attention import has_attention_map
from ..data.preprocess import preprocess_file
from ..io_utils import UserError
from ..models.checkpoint import load_checkpoint, model_from_checkpoint
from .collect import RunKey, StudyInputs
from .figures import boxplots, find_image, qualitative_grid
from .figures_attention import attention_figure, attention_inputs
from .figures_curves import learning_curves

ATTENTION_CANDIDATES = 4  # test cases (spread over the ids) tried for the attention figure's input image


def checkpoint_run(path: Path) -> RunKey:
    """``(dataset, variant, seed)`` a checkpoint says it belongs to (its ``config``), reading no weights."""
    try:  # mmap: tensors stay on disk, only the small dict of settings is read
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        rc = ckpt["config"]
        return str(rc["dataset"]), str(rc["variant"]), int(rc["seed"])
    except FileNotFoundError:
        raise UserError(f"{path}: checkpoint not found; train first or fix --checkpoints") from None
    except Exception as exc:  # noqa: BLE001 - any failure means: no usable run identity
        raise UserError(
            f"{path}: not a jointseg checkpoint with its run config ({type(exc).__name__}: {exc})"
        ) from None


def shown_runs(inputs: StudyInputs) -> dict[tuple[str, str], tuple[int, Path, Path | None]]:
    """``{(dataset, variant): (seed, checkpoint, predictions)}``, the smallest seed of each."""
    out: dict[tuple[str, str], tuple[int, Path, Path | None]] = {}
    for ckpt, preds in inputs.checkpoints:
        ds, v, seed = checkpoint_run(ckpt)
        if (ds, v) not in out or seed < out[(ds, v)][0]:
            out[(ds, v)] = (seed, ckpt, preds)
    return out


def qualitative_cases(df: pd.DataFrame, ds: str, variants: list[str], n: int) -> list[str]:
    """``n`` test cases spread evenly over the sorted case ids every variant has."""
    sub = df[df["dataset"] == ds]
    if not variants:
        return []
    common = sorted(set.intersection(*(set(sub.loc[sub["variant"] == v, "case"]) for v in variants)))
    if len(common) <= n:
        return common
    return [common[i] for i in np.linspace(0, len(common) - 1, n).round().astype(int)]


def _learning_curves(inputs: StudyInputs, ds: str, variants: list[str], path: Path) -> tuple[list, list]:
    histories = {
        (v, s): inputs.histories[(d, w, s)]
        for v in variants  # variant order, then seed
        for d, w, s in sorted(inputs.histories)
        if d == ds and w == v
    }
    if not histories:
        return [], [f"{ds}: no history.csv given, learning curves not drawn"]
    return [learning_curves(histories, ds, path)], []


def _qualitative(
    inputs: StudyInputs, df: pd.DataFrame, ds: str, variants: list[str], runs: dict, n_cases: int, path: Path
) -> tuple[list, list]:
    if ds not in inputs.test_dirs:
        return [], [f"{ds}: no test image/label folders given; qualitative grid not drawn"]
    shown = [v for v in variants if (ds, v) in runs and runs[(ds, v)][2] is not None]
    notes = [
        f"{ds}/{v}: no checkpoint with predictions given; left out of the qualitative grid"
        for v in variants
        if v not in shown
    ]
    if not shown:
        return [], notes
    images, labels = inputs.test_dirs[ds]
    scores = {}  # (variant, case) -> Dice of the shown seed, mean over classes
    for v in shown:
        rows = df[(df["dataset"] == ds) & (df["variant"] == v) & (df["seed"] == runs[(ds, v)][0])]
        scores.update({(v, c): float(g["dice"].mean()) for c, g in rows.groupby("case")})
    axis = int(inputs.manifests[ds].get("preprocess", {}).get("slice_axis", 2))
    drawn = qualitative_grid(
        qualitative_cases(df, ds, shown, n_cases),
        images,
        labels,
        {v: runs[(ds, v)][2] for v in shown},
        ds,
        axis,
        path,
        scores,
    )
    if drawn is None:
        return [], notes + [f"{ds}: no test case has image, reference and all predictions; qualitative grid not drawn"]
    return [drawn], notes


def _attention(
    inputs: StudyInputs,
    df: pd.DataFrame,
    ds: str,
    variants: list[str],
    reference: str,
    runs: dict,
    n_queries: int,
    fig_dir: Path,
) -> tuple[list, list]:
    if ds not in inputs.test_dirs:
        return [], [f"{ds}: no test image folder given; attention maps not drawn"]
    cases = qualitative_cases(df, ds, variants, ATTENTION_CANDIDATES)
    images = inputs.test_dirs[ds][0]
    image = next((p for c in cases if (p := find_image(images, c)) is not None), None)
    if image is None:
        return [], [f"{ds}: no test image found in {images}; attention maps not drawn"]
    loaded = []  # (variant, model, checkpoint dict)
    for v in variants:
        if (ds, v) not in runs:
            continue
        ckpt = load_checkpoint(runs[(ds, v)][1])
        model = model_from_checkpoint(ckpt)
        if has_attention_map(getattr(model, "attention", None)):  # none, cbam and baselines have no map
            loaded.append((v, model, ckpt))
    if not loaded:
        return [], [f"{ds}: no variant with attention has a checkpoint given; attention figure not drawn"]
    # one input and one set of query points for every variant, chosen with the reference
    # variant's model (its predicted structure), so the panels are comparable
    chooser = next((e for e in loaded if e[0] == reference), loaded[0])
    array, _ = preprocess_file(image, chooser[2]["preprocess"])
    size = tuple(chooser[2]["model_kwargs"]["input_size"])
    x, fg = attention_inputs(chooser[1], array, size)
    drawn = []
    for v, model, _ in loaded:
        entry = {"variant": v, "model": model, "x": x, "foreground": fg}
        figure = attention_figure([entry], f"{ds}, {v} ({image.name})", n_queries, fig_dir / f"{ds}_attention_{v}.png")
        drawn += [figure] if figure is not None else []
    return drawn, []


def make_figures(
    inputs: StudyInputs,
    df: pd.DataFrame,
    pooled: pd.DataFrame,
    config: dict,
    out: Path,
    datasets: list[str],
    variants: list[str],
    class_names: dict[str, dict[int, str]],
    units: dict[str, str],
) -> tuple[list[Path], list[str]]:
    """Draw every figure it has inputs for. Returns ``(written files, notes on what was not drawn)``."""
    fig_dir = out / "figures"
    n_cases = int(config["report"]["qualitative_cases"])
    n_queries = int(config["report"]["attention_queries"])
    reference = config["reference_variant"]
    runs = shown_runs(inputs)
    written: list[Path] = []
    notes: list[str] = []
    if not inputs.checkpoints:
        notes.append("no checkpoints given; qualitative grids and attention maps not drawn")
    for ds in datasets:
        sub = pooled[pooled["dataset"] == ds]
        ds_variants = [v for v in variants if v in set(sub["variant"])]
        written.append(
            boxplots(sub, ds, ds_variants, class_names.get(ds, {}), units[ds], fig_dir / f"{ds}_boxplots.png")
        )
        parts = [_learning_curves(inputs, ds, ds_variants, fig_dir / f"{ds}_learning_curves.png")]
        if inputs.checkpoints:
            parts.append(_qualitative(inputs, df, ds, ds_variants, runs, n_cases, fig_dir / f"{ds}_qualitative.png"))
            parts.append(_attention(inputs, df, ds, ds_variants, reference, runs, n_queries, fig_dir))
        for files, why in parts:
            written += files
            notes += why
    return written, notes
