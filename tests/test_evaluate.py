"""`jointseg evaluate` on tiny 2-D PNG and 3-D NIfTI folders, including the error cases."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from jointseg.cli import main as cli_main
from jointseg.evaluation.evaluate import columns, evaluate_folders, read_metrics
from jointseg.evaluation.metrics import case_metrics

RUN = ["--dataset", "toy", "--variant", "joint", "--seed", "3"]


def save_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(np.uint8)).save(path)


def save_nii(path: Path, labels: np.ndarray, zooms=(1.0, 1.0, 2.5), shift=0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*zooms, 1.0])
    affine[0, 3] = shift
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), affine), str(path))


@pytest.fixture()
def png_folders(tmp_path):
    ref = np.zeros((3, 20, 24), np.uint8)
    ref[0, 4:12, 5:15] = 1
    ref[1, 10:18, 2:9] = 1
    # case c: reference empty
    pred = ref.copy()
    pred[0, 4:12, 6:16] = 1
    pred[1] = 0  # missed
    pred[2, 0:2, 0:2] = 1  # spurious
    for i, cid in enumerate(["a", "b", "c"]):
        save_png(tmp_path / "ref" / f"{cid}.png", ref[i])
        save_png(tmp_path / "pred" / f"{cid}.png", pred[i])
    return tmp_path, pred, ref


def test_png_folder_rows_and_values(png_folders, capsys):
    root, pred, ref = png_folders
    out = root / "metrics.csv"
    assert (
        cli_main(["evaluate", "--pred", str(root / "pred"), "--ref", str(root / "ref"), "--out", str(out), *RUN]) == 0
    )
    header = out.read_text().splitlines()[0]
    assert (
        header
        == ",".join(columns())
        == ("dataset,variant,seed,case,class,dice,iou,hd95,assd,sensitivity,specificity,precision,diagonal,unit")
    )
    df = read_metrics(out)
    assert list(df["case"]) == ["a", "b", "c"] and list(df["class"]) == [1, 1, 1]
    assert set(df["dataset"]) == {"toy"} and set(df["variant"]) == {"joint"} and set(df["seed"]) == {3}
    # PNG: no spacing, so the diagonal of the 20 x 24 grid in pixels
    assert df["diagonal"].tolist() == pytest.approx([math.hypot(20, 24)] * 3) and set(df["unit"]) == {"px"}
    expected = case_metrics(pred[0], ref[0], [1])[0]
    assert df.loc[0, "dice"] == pytest.approx(expected["dice"])
    assert df.loc[0, "hd95"] == pytest.approx(expected["hd95"]) and df.loc[0, "hd95"] > 0
    assert df.loc[1, "dice"] == 0 and math.isnan(df.loc[1, "hd95"])
    assert df.loc[2, "dice"] == 0 and math.isnan(df.loc[2, "sensitivity"])
    printed = capsys.readouterr().out
    assert "dice" in printed and "3 cases" in printed


def test_nifti_folder_uses_header_spacing_and_default_classes(tmp_path):
    shape = (10, 12, 6)
    ref = np.zeros(shape, np.uint8)
    ref[2:6, 3:8, 1:4] = 1
    ref[6:9, 3:8, 1:4] = 2
    pred = np.zeros(shape, np.uint8)
    pred[2:6, 3:8, 1:5] = 1  # one slice too many along the 2.5 mm axis; class 2 missing
    save_nii(tmp_path / "ref" / "hip_001.nii.gz", ref)
    save_nii(tmp_path / "pred" / "hip_001.nii.gz", pred)
    # a second case where neither mask has class 2: the both-empty row must appear
    ref2 = np.zeros(shape, np.uint8)
    ref2[1:4, 1:4, 1:3] = 1
    save_nii(tmp_path / "ref" / "hip_002.nii.gz", ref2)
    save_nii(tmp_path / "pred" / "hip_002.nii.gz", ref2)
    df = evaluate_folders(tmp_path / "pred", tmp_path / "ref", progress=False)
    assert list(zip(df["case"], df["class"])) == [("hip_001", 1), ("hip_001", 2), ("hip_002", 1), ("hip_002", 2)]
    row = df.iloc[0]
    assert row["hd95"] == pytest.approx(2.5)  # one voxel along z, in millimetres
    # diagonal of the 10 x 12 x 6 grid with 1 x 1 x 2.5 mm voxels, in mm, on every row of the case
    assert row["diagonal"] == pytest.approx(math.sqrt(10**2 + 12**2 + 15**2)) and row["unit"] == "mm"
    assert df["diagonal"].tolist() == pytest.approx([row["diagonal"]] * 4)
    assert row["hd95"] == pytest.approx(case_metrics(pred, ref, [1], (1.0, 1.0, 2.5))[0]["hd95"])
    assert df.iloc[1]["dice"] == 0 and math.isnan(df.iloc[1]["assd"])
    assert df.iloc[3]["dice"] == 1 and df.iloc[3]["hd95"] == 0
    only_one = evaluate_folders(tmp_path / "pred", tmp_path / "ref", classes=[1], progress=False)
    assert list(only_one["class"]) == [1, 1]


def _run(root: Path) -> tuple[int, Path]:
    out = root / "out" / "metrics.csv"
    rc = cli_main(
        ["evaluate", "--pred", str(root / "pred"), "--ref", str(root / "ref"), "--out", str(out), "--quiet", *RUN]
    )
    return rc, out


def test_unmatched_ids_exit_2_and_write_nothing(png_folders, capsys):
    root, _, _ = png_folders
    (root / "pred" / "b.png").unlink()
    save_png(root / "pred" / "zz.png", np.zeros((20, 24), np.uint8))
    rc, out = _run(root)
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert "unmatched case ids" in err and "b" in err and "zz" in err


def test_shape_mismatch_exit_2(png_folders, capsys):
    root, _, _ = png_folders
    save_png(root / "pred" / "b.png", np.zeros((20, 25), np.uint8))
    rc, out = _run(root)
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert "b.png" in err and "shape" in err


def test_affine_mismatch_exit_2(tmp_path, capsys):
    lab = np.zeros((6, 6, 4), np.uint8)
    lab[1:4, 1:4, 1:3] = 1
    save_nii(tmp_path / "ref" / "x.nii.gz", lab)
    save_nii(tmp_path / "pred" / "x.nii.gz", lab, shift=0.5)
    rc, out = _run(tmp_path)
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert "affine" in err and "x.nii.gz" in err


def test_unreadable_and_empty_folders_exit_2(tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "ref").mkdir()
    rc, out = _run(tmp_path)
    assert rc == 2 and "no prediction files" in capsys.readouterr().err
    (tmp_path / "pred" / "x.png").write_bytes(b"not a png")
    save_png(tmp_path / "ref" / "x.png", np.zeros((4, 4), np.uint8))
    rc, out = _run(tmp_path)
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists() and "x.png" in err and "cannot read" in err


def test_rgb_png_is_rejected(tmp_path, capsys):
    save_png(tmp_path / "ref" / "x.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "pred").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "pred" / "x.png")
    rc, out = _run(tmp_path)
    assert rc == 2 and "single-channel" in capsys.readouterr().err


def test_output_is_byte_stable(png_folders):
    root, _, _ = png_folders
    _, out = _run(root)
    first = out.read_bytes()
    _, out = _run(root)
    assert out.read_bytes() == first
    assert pd.read_csv(out).shape == (3, len(columns()))


def test_run_identity_is_required_and_checked(png_folders, capsys):
    root, _, _ = png_folders
    out = root / "metrics.csv"
    base = ["evaluate", "--pred", str(root / "pred"), "--ref", str(root / "ref"), "--out", str(out), "--quiet"]
    with pytest.raises(SystemExit):
        cli_main(base)  # argparse: --dataset/--variant/--seed are required
    assert "--dataset" in capsys.readouterr().err
    assert cli_main([*base, "--dataset", " ", "--variant", "joint", "--seed", "0"]) == 2
    assert "--dataset must be a non-empty name" in capsys.readouterr().err and not out.exists()
