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
from jointseg.evaluation.evaluate import COLUMNS, write_metrics
from jointseg.models import build_model
from jointseg.reporting import figures
from jointseg.training.build import model_kwargs


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
    write_metrics(pd.DataFrame(rows)[list(COLUMNS)], run["run"] / "metrics.csv")
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
    for ds in datasets:
        for kind in ("boxplots", "learning_curves", "qualitative", "attention"):
            _assert_image(out / "figures" / f"{ds}_{kind}.png")
    report = (out / "report.md").read_text()
    assert f"figures/{datasets[-1]}_attention.png" in report and "Not produced" not in report
    with Image.open(out / "figures" / "toy2d_attention.png") as im:
        assert "Software" not in im.info  # metadata stripped for stable bytes


def test_figures_are_drawn_2d(tmp_path):
    _figures(tmp_path, with_3d=False)


@pytest.mark.slow
def test_figures_are_drawn_2d_and_3d(tmp_path):
    _figures(tmp_path, with_3d=True)


def test_learning_curves_have_a_legend_a_colour_per_variant_and_a_style_per_seed(tmp_path, monkeypatch):
    drawn = {}

    def keep(fig, path):
        drawn["fig"] = fig
        return Path(path)

    monkeypatch.setattr(figures, "save_figure", keep)
    steps = np.arange(0, 60, 10)
    histories = {
        (v, s): pd.DataFrame({"step": steps, "loss": 1 / (1 + steps + s), "val_dice": 0.5 + steps / 200})
        for v in ("joint", "self")
        for s in (0, 1)
    }
    figures.learning_curves(histories, "toy", tmp_path / "curves.png")
    fig = drawn["fig"]
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["joint", "self", "seed 0", "seed 1"]
    lines = fig.axes[0].get_lines()  # loss panel, in the order of `histories`
    assert len(lines) == 4
    colours = [line.get_color() for line in lines]
    styles = [line.get_linestyle() for line in lines]
    assert colours[0] == colours[1] != colours[2] == colours[3]  # joint, joint, self, self
    assert styles[0] == styles[2] != styles[1] == styles[3]  # seed 0, seed 1 alternate
