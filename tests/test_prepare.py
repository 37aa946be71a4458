"""``jointseg prepare``: bad input, the exact 3-D round trip, byte-identical reruns, split reuse."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from msd_helpers import AFFINE, _nii, assert_failed_cleanly, make_msd, run_prepare
from PIL import Image

from jointseg.data.prepare import Settings, prepare
from jointseg.data.preprocess import preprocess_file, restore, save_prediction

# --------------------------------------------------------------------------- tiny raw trees


def make_isic(root: Path, n: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split, folder in (("train", "Training"), ("val", "Validation"), ("test", "Test_v2")):
        img_dir = root / f"ISIC-2017_{folder}_Data"
        gt_dir = root / f"ISIC-2017_{folder}_Part1_GroundTruth"
        img_dir.mkdir(parents=True)
        gt_dir.mkdir(parents=True)
        for i in range(n):
            cid = f"ISIC_{hash((split, i)) % 10**7:07d}"
            h, w = 30 + i, 40 + 2 * i
            mask = np.zeros((h, w), np.uint8)
            mask[8:20, 10 : 25 + i] = 255
            img = (rng.random((h, w, 3)) * 80 + 120).astype(np.uint8)
            img[mask > 0] //= 2
            Image.fromarray(img).save(img_dir / f"{cid}.jpg", quality=95)
            Image.fromarray(mask).save(gt_dir / f"{cid}_segmentation.png")
    return root


# --------------------------------------------------------------------------- bad input: 2-D


def _first(root: Path, pattern: str) -> Path:
    return sorted(root.rglob(pattern))[0]


def test_isic_ok(tmp_path):
    src = make_isic(tmp_path / "raw")
    assert run_prepare("isic", src, tmp_path / "out") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {c["split"] for c in manifest["cases"]} == {"train", "val", "test"}  # official, from folders
    lab = np.load(tmp_path / "out" / manifest["cases"][0]["label"])
    assert lab.dtype == np.uint8 and set(np.unique(lab)) <= {0, 1} and lab.shape == (16, 16)
    img = np.load(tmp_path / "out" / manifest["cases"][0]["image"], mmap_mode="r")
    assert img.dtype == np.float32 and img.shape == (3, 16, 16)
    test_labels = sorted((tmp_path / "out" / "test" / "labels").glob("*.png"))
    assert len(test_labels) == 4 and set(np.unique(np.asarray(Image.open(test_labels[0])))) == {0, 1}


@pytest.mark.parametrize("fault", ["truncated", "grey", "values", "shape", "no_mask", "empty", "missing"])
def test_isic_bad_input(tmp_path, capsys, fault):
    src = make_isic(tmp_path / "raw")
    out = tmp_path / "out"
    named = []
    if fault == "truncated":
        f = _first(src, "*.jpg")
        f.write_bytes(f.read_bytes()[:300])
        named = [f.name, "truncated"]
    elif fault == "grey":
        f = _first(src, "*.jpg")
        Image.open(f).convert("L").save(f)
        named = [f.name, "channel"]
    elif fault == "values":
        f = _first(src, "*_segmentation.png")
        m = np.asarray(Image.open(f)).copy()
        m[0, 0] = 128
        Image.fromarray(m).save(f)
        named = [f.name, "128"]
    elif fault == "shape":
        f = _first(src, "*_segmentation.png")
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(f)
        named = [f.name, "shape"]
    elif fault == "no_mask":
        f = _first(src, "*_segmentation.png")
        f.unlink()
        named = [f.name.replace("_segmentation.png", ".jpg"), "no mask"]
    elif fault == "empty":
        src = tmp_path / "empty"
        src.mkdir()
        named = [str(src)]
    else:
        src = tmp_path / "does-not-exist"
        named = [str(src), "not found"]
    assert_failed_cleanly(run_prepare("isic", src, out), capsys, out, *named)


# --------------------------------------------------------------------------- bad input: 3-D


@pytest.mark.parametrize("fault", ["truncated", "shape", "affine", "nan", "values", "no_label", "empty", "channels"])
def test_msd_bad_input(tmp_path, capsys, fault):
    src = make_msd(tmp_path / "raw")
    task = src / "Task09_Tiny"
    out = tmp_path / "out"
    img_path, lab_path = task / "imagesTr" / "tiny_002.nii.gz", task / "labelsTr" / "tiny_002.nii.gz"
    named = [img_path.name]
    if fault == "truncated":
        data = img_path.read_bytes()
        img_path.write_bytes(data[: len(data) // 2])
        named.append("truncated")
    elif fault == "shape":
        _nii(lab_path, np.zeros((3, 3, 3), np.uint8))
        named = [lab_path.name, "shape"]
    elif fault == "affine":
        shifted = AFFINE.copy()
        shifted[0, 3] += 2.0
        _nii(lab_path, np.asarray(nib.load(str(lab_path)).dataobj), shifted)
        named = [lab_path.name, "affine"]
    elif fault == "nan":
        data = nib.load(str(img_path)).get_fdata().astype(np.float32)
        data[4, 4, 4] = np.nan
        _nii(img_path, data)
        named.append("NaN")
    elif fault == "values":
        data = np.asarray(nib.load(str(lab_path)).dataobj).copy()
        data[5, 3, 3] = 5
        _nii(lab_path, data)
        named = [lab_path.name, "[5]"]
    elif fault == "no_label":
        lab_path.unlink()
        named.append("no label")
    elif fault == "empty":
        for f in (task / "imagesTr").iterdir():
            f.unlink()
        named = ["imagesTr", "empty"]
    else:  # a 2-channel image in a task whose dataset.json declares one modality
        shape = nib.load(str(lab_path)).shape
        _nii(img_path, np.ones((*shape, 2), np.float32))
        named += ["2 channel(s)", "expects 1"]
    assert_failed_cleanly(run_prepare("msd", src, out), capsys, out, *named)


def test_failed_rerun_keeps_previous_output(tmp_path, capsys):
    src = make_msd(tmp_path / "raw")
    out = tmp_path / "out"
    assert run_prepare("msd", src, out) == 0
    before = (out / "manifest.json").read_bytes()
    (src / "Task09_Tiny" / "labelsTr" / "tiny_001.nii.gz").unlink()
    assert run_prepare("msd", src, out) == 2
    assert (out / "manifest.json").read_bytes() == before
    assert not list(tmp_path.glob(".out.tmp-*"))


# --------------------------------------------------------------------------- round trips


def test_msd_round_trip_exact(tmp_path):
    src = make_msd(tmp_path / "raw")
    out = tmp_path / "out"
    manifest = prepare(src, out, Settings(dataset="tiny", format="msd", size=(16, 16), slice_axis=2))
    spec = manifest["preprocess"]
    assert spec["ndim"] == 3 and manifest["num_classes"] == 3
    for case in manifest["cases"]:
        image_path, label_path = src / case["source_image"], src / case["source_label"]
        array, inverse = preprocess_file(image_path, spec)
        assert np.array_equal(array, np.load(out / case["image"]))  # inference == training preprocessing
        assert array.shape[2:] == (16, 16) and array.shape[1] == 1
        slices = np.load(out / case["label"])
        original = np.asarray(nib.load(str(label_path)).dataobj)
        restored = restore(slices, inverse)
        assert restored.shape == original.shape
        assert np.array_equal(restored, original)
        probs = np.stack([(slices == k).astype(np.float32) for k in range(3)])
        assert np.array_equal(restore(probs, inverse).argmax(0), original)
        written = save_prediction(restored, inverse, tmp_path / f"{case['id']}.nii.gz")
        back = nib.load(str(written))
        assert np.array_equal(back.affine, nib.load(str(label_path)).affine)
        assert nib.aff2axcodes(back.affine) == nib.aff2axcodes(AFFINE) != ("R", "A", "S")
        assert np.array_equal(np.asarray(back.dataobj), original)
        assert case["affine"] == nib.load(str(label_path)).affine.tolist() and case["shape"] == list(original.shape)


def test_msd_multimodal_4d_round_trip(tmp_path):
    src = make_msd(tmp_path / "raw", modalities=2)
    out = tmp_path / "out"
    assert run_prepare("msd", src, out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    spec = manifest["preprocess"]
    assert manifest["in_channels"] == spec["in_channels"] == 2 and spec["channels"] == ["FLAIR", "T1w"]
    for case in manifest["cases"]:
        image_path, label_path = src / case["source_image"], src / case["source_label"]
        array, inverse = preprocess_file(image_path, spec)
        assert np.array_equal(array, np.load(out / case["image"])) and array.shape[1] == 2
        raw = np.asarray(nib.load(str(image_path)).dataobj)
        for m in range(2):  # each modality z-scored on its own nonzero voxels
            values = array[:, m][array[:, m] != 0]
            assert values.size == np.count_nonzero(raw[..., m]) and abs(values.mean()) < 1e-4
        original = np.asarray(nib.load(str(label_path)).dataobj)
        assert np.array_equal(restore(np.load(out / case["label"]), inverse), original)
    test_images = sorted((out / "test" / "images").iterdir())
    assert test_images and nib.load(str(test_images[0])).shape[3] == 2  # the 4-D file, as given


def test_isic_preprocess_file_matches_prepared(tmp_path):
    src = make_isic(tmp_path / "raw")
    manifest = prepare(src, tmp_path / "out", Settings(dataset="t", format="isic", size=(16, 16)))
    case = manifest["cases"][0]
    array, inverse = preprocess_file(src / case["source_image"], manifest["preprocess"])
    assert np.array_equal(array, np.load(tmp_path / "out" / case["image"]))
    assert tuple(inverse.shape) == tuple(case["shape"])
    label = np.load(tmp_path / "out" / case["label"])
    full = restore(label, inverse)
    assert full.shape == tuple(case["shape"]) and set(np.unique(full)) <= {0, 1}
    probs = restore(np.stack([1.0 - label, label]).astype(np.float32), inverse)
    assert probs.shape == (2, *case["shape"])
    # the normalisation statistics come from the training split only
    train = [np.load(tmp_path / "out" / c["image"]) for c in manifest["cases"] if c["split"] == "train"]
    assert np.allclose(np.concatenate([t.reshape(3, -1) for t in train], 1).mean(1), 0, atol=1e-4)


def test_outputs_identical_across_runs_and_split_reused(tmp_path):
    src = make_msd(tmp_path / "raw", n=6)
    st = Settings(dataset="tiny", format="msd", size=(16, 16), seed=3)
    a, b = tmp_path / "a", tmp_path / "b"
    prepare(src, a, st)
    prepare(src, b, st)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    # a stored split is reused on reruns (here one edited by hand, still consistent)
    splits = json.loads((a / "splits.json").read_text())
    splits["train"], splits["test"] = splits["test"], splits["train"]
    (a / "splits.json").write_text(json.dumps(splits))
    prepare(src, a, st)
    again = json.loads((a / "splits.json").read_text())
    assert again["train"] == sorted(splits["train"]) and again["test"] == sorted(splits["test"])
    # a different seed makes a new split
    prepare(src, a, Settings(dataset="tiny", format="msd", size=(16, 16), seed=4))
    assert json.loads((a / "splits.json").read_text())["seed"] == 4
