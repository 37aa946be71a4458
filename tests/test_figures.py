"""Figures from real inputs: box plots, learning curves (legend, styles), qualitative grid, attention maps."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from reporting_helpers import CASES, VARIANTS, manifest, prepared_folder, write_config, write_json, write_run_files

from jointseg.cli import main as cli_main
from jointseg.config import load_config
from jointseg.evaluation.evaluate import columns, write_metrics
from jointseg.models import build_model, model_kwargs
from jointseg.reporting import figures, figures_curves


def _rgb_case(rng, size=48):
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.integers(18, 30, 2)
    lesion = (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(60, 120)
    img = np.full((size, size, 3), 200, np.uint8)
    img[lesion] = (120, 70, 50)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    return img, lesion.astype(np.uint8)


def _volume_case(rng, shape=(40, 44, 8)):
    grid = np.indices(shape)
    head = ((grid[0] - 20) / 18) ** 2 + ((grid[1] - 22) / 20) ** 2 <= 1
    a = ((grid[0] - 15) / 5) ** 2 + ((grid[1] - 20) / 6) ** 2 + ((grid[2] - 4) / 3) ** 2 <= 1
    b = ((grid[0] - 25) / 5) ** 2 + ((grid[1] - 24) / 6) ** 2 + ((grid[2] - 4) / 3) ** 2 <= 1
    img = head * 100.0 + a * 50 + b * 80 + rng.normal(0, 3, shape) * head
    lab = np.zeros(shape, np.uint8)
    lab[a] = 1
    lab[b] = 2
    return img.astype(np.float32), lab


AFFINE = np.diag([1.0, 1.2, 2.5, 1.0])


def _save_case(folder: Path, cid: str, array: np.ndarray, ndim: int) -> None:
    if ndim == 2:
        Image.fromarray(array).save(folder / f"{cid}.png")
    else:
        nib.save(nib.Nifti1Image(array, AFFINE), str(folder / f"{cid}.nii.gz"))


def _test_folders(prepared: Path, ndim: int, rng) -> tuple[Path, Path, dict]:
    prep = prepared / "test"
    (prep / "images").mkdir(parents=True)
    (prep / "labels").mkdir(parents=True)
    cases = {}
    for cid in CASES[:3]:
        img, lab = _rgb_case(rng) if ndim == 2 else _volume_case(rng)
        _save_case(prep / "images", cid, img, ndim)
        _save_case(prep / "labels", cid, lab, ndim)
        cases[cid] = lab
    return prep / "images", prep / "labels", cases


def _model(rc: dict, man: dict, v_i: int):
    torch.manual_seed(v_i)
    model = build_model(**model_kwargs(rc, man))
    with torch.no_grad():  # untrained blocks start near uniform: give the maps some structure
        for param in model.attention.parameters():
            param.normal_(0.0, 0.5)
    return model


def _write_run(
    root: Path, config: dict, ds: str, man: dict, spec: dict, cases: dict, v_i: int, seed: int, files: dict
) -> None:
    """One run: run config, history, predictions, metrics and (first seed) a checkpoint."""
    variant, ndim = VARIANTS[v_i], man["ndim"]
    run = write_run_files(root, config, ds, variant, seed, steps_scale=20 + 10 * v_i)
    rc = json.loads(run["run_config"].read_text())
    files["run_configs"].append(run["run_config"])
    files["histories"].append(run["history"])
    (run["run"] / "predictions").mkdir()
    rows = []
    for cid, lab in cases.items():
        _save_case(run["run"] / "predictions", cid, np.roll(lab, v_i + seed, axis=0), ndim)
        for k in range(1, man["num_classes"]):
            d = 0.9 - 0.1 * (v_i + seed) + 0.01 * k
            rows.append(
                {
                    "dataset": ds,
                    "variant": variant,
                    "seed": seed,
                    "case": cid,
                    "class": k,
                    "dice": d,
                    "iou": d / (2 - d),
                    "hd95": 1.0 + v_i,
                    "assd": 0.5,
                    "sensitivity": d,
                    "specificity": 0.99,
                    "precision": d,
                    "diagonal": float(np.linalg.norm(lab.shape)),
                    "unit": "px",
                }
            )
    write_metrics(pd.DataFrame(rows)[list(columns())], run["run"] / "metrics.csv")
    files["metrics"].append(run["run"] / "metrics.csv")
    if seed == 0:  # the figures show the first seed
        ckpt = run["run"] / "checkpoints" / "final.pt"
        ckpt.parent.mkdir()
        torch.save(
            {
                "model": _model(rc, man, v_i).state_dict(),
                "model_kwargs": model_kwargs(rc, man),
                "preprocess": spec,
                "config": rc,
                "step": 100,
            },
            ckpt,
        )
        files["checkpoints"].append(ckpt)
        files["predictions"].append(run["run"] / "predictions")


def fake_full_tree(root: Path, with_3d: bool) -> list[str]:
    """Prepared test folders, predictions, metrics, histories and tiny checkpoints; returns CLI args."""
    rng = np.random.default_rng(0)
    cfg_path = write_config(root, with_msd=with_3d)
    config = load_config(cfg_path)
    files: dict[str, list] = {
        k: []
        for k in (
            "metrics",
            "run_configs",
            "histories",
            "manifests",
            "test_images",
            "test_labels",
            "checkpoints",
            "predictions",
        )
    }
    for ds, ndim in (("toy2d", 2), ("toy3d", 3))[: 2 if with_3d else 1]:
        man = manifest(ds, ndim)
        prepared = prepared_folder(config, ds)  # where the run configs say the data are
        files["manifests"].append(write_json(prepared / "manifest.json", man))
        images, labels, cases = _test_folders(prepared, ndim, rng)
        files["test_images"].append(images)
        files["test_labels"].append(labels)
        spec = (
            {"ndim": 2, "size": [64, 64], "in_channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}
            if ndim == 2
            else {"ndim": 3, "size": [64, 64], "in_channels": 1, "slice_axis": 2}
        )
        for v_i in range(len(VARIANTS)):
            for seed in (0, 1):
                _write_run(root, config, ds, man, spec, cases, v_i, seed, files)
    args = ["aggregate", "--config", str(cfg_path), "--out", str(root / "summary"), "--no-mlflow"]
    for key, paths in files.items():
        args += [f"--{key.replace('_', '-')}", *map(str, paths)]
    return args


def _assert_image(path: Path, min_side: int = 200) -> None:
    assert path.is_file(), path
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= min_side, (path, im.size)
        arr = np.asarray(im.convert("L"))
    assert arr.std() > 5, f"{path} looks blank"


def _figures(tmp_path: Path, with_3d: bool) -> None:
    assert cli_main(fake_full_tree(tmp_path, with_3d)) == 0
    out = tmp_path / "summary"
    datasets = ("toy2d", "toy3d") if with_3d else ("toy2d",)
    attention = [v for v in VARIANTS if v != "none"]  # every toy variant has an attention block
    for ds in datasets:
        for kind in ("boxplots", "learning_curves", "qualitative", *(f"attention_{v}" for v in attention)):
            _assert_image(out / "figures" / f"{ds}_{kind}.png")
    report = (out / "report.md").read_text()
    assert f"figures/{datasets[-1]}_attention_joint.png" in report and "Not produced" not in report
    with Image.open(out / "figures" / "toy2d_attention_joint.png") as im:
        assert "Software" not in im.info  # metadata stripped for stable bytes
    # every figure readable whole in a 1000-px window (the report's image pane does not scroll up)
    for png in (out / "figures").glob("*.png"):
        with Image.open(png) as im:
            assert im.size[1] <= figures.MAX_HEIGHT_IN * figures.DPI, (png.name, im.size)


def test_figures_are_drawn_2d(tmp_path):
    _figures(tmp_path, with_3d=False)


@pytest.mark.slow
def test_figures_are_drawn_2d_and_3d(tmp_path):
    _figures(tmp_path, with_3d=True)


def test_learning_curves_have_a_panel_per_variant_a_smoothed_loss_and_markers(tmp_path, monkeypatch):
    """Variants whose curves coincide stay visible: each has its own panels (loss above,
    validation Dice below), with the raw loss faint under its EMA, and a marker per
    validation; one colour per variant, one line style per seed, a legend saying which."""
    drawn = {}

    def keep(fig, path):
        drawn["fig"] = fig
        return Path(path)

    monkeypatch.setattr(figures_curves, "save_figure", keep)
    steps = np.arange(1, 201)
    loss = pd.Series(1 / np.sqrt(steps) + 0.05 * np.sin(steps))
    histories = {  # identical curves for both variants: drawn on top of each other, one would vanish
        (v, s): pd.DataFrame({"step": steps, "loss": loss, "val_dice": np.where(steps % 50 == 0, 0.5 + s / 10, np.nan)})
        for v in ("joint", "self")
        for s in (0, 1)
    }
    figures_curves.learning_curves(histories, "toy", tmp_path / "curves.png")
    fig = drawn["fig"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["joint", "self", "seed 0", "seed 1", "other variants"]
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert list(panels) == ["joint", "self"]
    colour = {v: panels[v].title.get_color() for v in panels}
    assert colour["joint"] != colour["self"]
    for variant, ax in panels.items():
        own = [ln for ln in ax.get_lines() if ln.get_color() == colour[variant]]
        raw, ema = own[0::2], own[1::2]  # per seed: the raw trace, then its moving average
        assert len(raw) == len(ema) == 2
        assert all(ln.get_alpha() < 0.5 for ln in raw) and all(ln.get_alpha() is None for ln in ema)
        np.testing.assert_allclose(ema[0].get_ydata(), figures_curves.smoothed(loss, len(loss)))
        assert ema[0].get_ydata()[-1] != pytest.approx(loss.iloc[-1], abs=1e-3)  # smoothed, not the raw trace
        assert raw[0].get_linestyle() != raw[1].get_linestyle()  # seed 0 and seed 1
        others = [ln for ln in ax.get_lines() if ln not in own]
        assert len(others) == 2  # the other variant's two seeds, grey, for comparison
    dice_axes = [ax for ax in fig.axes if ax.get_ylabel() == "validation Dice" or ax.get_xlabel() == "iteration"]
    marked = [ln for ax in dice_axes for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert len(marked) == 4 and all(len(ln.get_xdata()) == 4 for ln in marked)  # 4 validations per seed
