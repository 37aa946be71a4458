"""nnU-Net v2 raw data sets: 2-D/3-D, 1/2 channels, through prepare, the loader and preprocessing;
every malformed input fails naming the case, with exit code 2 and no manifest.json."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from msd_helpers import assert_failed_cleanly, run_prepare
from nnunet_helpers import AFFINE_3D, make_nnunet_dataset
from PIL import Image

from jointseg import paths
from jointseg.cli import main as cli
from jointseg.config import load_config, preparation_key
from jointseg.data.loader import TrainBatches, eval_cases
from jointseg.data.preprocess import preprocess_file, restore

SIZE = 16


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        return np.asarray(Image.open(path))
    return np.asarray(nib.load(str(path)).dataobj)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("channels", [1, 2])
def test_prepare_loader_and_preprocess(tmp_path, ndim, channels):
    task = make_nnunet_dataset(tmp_path / "raw", ndim=ndim, channels=channels, cases=6, seed=ndim * 10 + channels)
    out = tmp_path / "out"
    # the data set folder one level below --source is found
    assert run_prepare("nnunet", task.parent, out, size=SIZE) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    spec = manifest["preprocess"]
    assert manifest["in_channels"] == spec["in_channels"] == channels and manifest["ndim"] == ndim
    assert manifest["labels"] == {"0": "background", "1": "tumor"} and manifest["num_classes"] == 2
    assert spec["channels"] == [f"MR{c}" for c in range(channels)] and spec["channel_files"] is True
    for case in manifest["cases"]:
        files = [task.parent / p for p in case["source_images"]]
        assert [f.name for f in files] == [f"{case['id']}_{c:04d}{spec['file_ending']}" for c in range(channels)]
        array, inverse = preprocess_file(files, spec)
        assert np.array_equal(array, np.load(out / case["image"]))  # inference == training preprocessing
        label = np.load(out / case["label"])
        original = _read(task.parent / case["source_label"])
        if ndim == 2:
            assert array.shape == (channels, SIZE, SIZE)
            assert restore(label, inverse).shape == original.shape
        else:
            assert array.shape[1] == channels and min(array.shape[2:]) >= SIZE  # padded, never resized
            assert np.array_equal(restore(label, inverse), original)  # exact 3-D round trip
    image, label = TrainBatches(out, "train", 2, (SIZE, SIZE), None, seed=0)[0]
    assert image.shape == (2, channels, SIZE, SIZE) and label.shape == (2, SIZE, SIZE)
    _, image, label = next(eval_cases(out, "val"))
    assert image.shape[1] == channels


def test_each_channel_normalised_on_its_own(tmp_path):
    task = make_nnunet_dataset(tmp_path / "raw", ndim=3, channels=2, cases=4, seed=3)
    out = tmp_path / "out"
    assert run_prepare("nnunet", task, out, size=SIZE) == 0
    case = json.loads((out / "manifest.json").read_text())["cases"][0]
    slices = np.load(out / case["image"])
    for c in range(2):
        raw = _read(task / "imagesTr" / f"{case['id']}_{c:04d}.nii.gz")
        values = slices[:, c][slices[:, c] != 0]
        assert values.size == np.count_nonzero(raw)  # zero background stays zero, nothing else is 0
        assert abs(values.mean()) < 1e-4 and abs(values.std() - 1) < 1e-3


def test_labelled_imagests_is_the_test_split_unlabelled_is_reported(tmp_path, capsys):
    task = make_nnunet_dataset(tmp_path / "a", ndim=3, channels=1, cases=6, seed=1, test_cases=2, labelled_test=True)
    out = tmp_path / "out_a"
    assert run_prepare("nnunet", task, out, size=SIZE) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    test_ids = sorted(c["id"] for c in manifest["cases"] if c["split"] == "test")
    assert test_ids == ["synth_006", "synth_007"]
    assert sorted(p.name for p in (out / "test" / "labels").iterdir()) == ["synth_006.nii.gz", "synth_007.nii.gz"]
    assert {c["split"] for c in manifest["cases"] if c["id"] < "synth_006"} == {"train", "val"}
    capsys.readouterr()
    task = make_nnunet_dataset(tmp_path / "b", ndim=3, channels=1, cases=6, seed=1, test_cases=2)
    out = tmp_path / "out_b"
    assert run_prepare("nnunet", task, out, size=SIZE) == 0
    assert "2 unlabelled imagesTs case(s) not scored" in capsys.readouterr().out
    ids = [c["id"] for c in json.loads((out / "manifest.json").read_text())["cases"]]
    assert ids == [f"synth_{i:03d}" for i in range(6)]


def _nii(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE_3D) -> None:
    nib.save(nib.Nifti1Image(data, affine), str(path))


FAULTS = [
    "missing_channel",
    "channel_shape",
    "channel_affine",
    "undeclared_value",
    "no_label",
    "region_labels",
    "extra_channel",
    "png_channel_shape",
]


@pytest.mark.parametrize("fault", FAULTS)
def test_bad_input_names_the_case(tmp_path, capsys, fault):
    ndim = 2 if fault.startswith("png") else 3
    task = make_nnunet_dataset(tmp_path / "raw", ndim=ndim, channels=2, cases=5, seed=7)
    ending = ".png" if ndim == 2 else ".nii.gz"
    cid = "synth_002"
    ch0, ch1 = (task / "imagesTr" / f"{cid}_{c:04d}{ending}" for c in range(2))
    label = task / "labelsTr" / f"{cid}{ending}"
    named = [cid]
    if fault == "missing_channel":
        ch1.unlink()
        named += [ch1.name, "missing"]
    elif fault == "channel_shape":
        _nii(ch1, np.ones((5, 5, 5), np.float32))
        named += ["shape", "one grid"]
    elif fault == "channel_affine":
        shifted = AFFINE_3D.copy()
        shifted[0, 3] += 3.0
        _nii(ch1, np.asarray(nib.load(str(ch1)).dataobj), shifted)
        named += ["affine"]
    elif fault == "undeclared_value":
        data = np.asarray(nib.load(str(label)).dataobj).copy()
        data[1, 1, 1] = 3
        _nii(label, data)
        named += ["[3]", "declared"]
    elif fault == "no_label":
        label.unlink()
        named += ["no label"]
    elif fault == "region_labels":
        meta = json.loads((task / "dataset.json").read_text())
        meta["labels"] = {"background": 0, "whole": [1, 2], "core": 2}
        (task / "dataset.json").write_text(json.dumps(meta))
        named = ["region-based", "whole"]
    elif fault == "extra_channel":
        (task / "imagesTr" / f"{cid}_0002{ending}").write_bytes(ch1.read_bytes())
        named += ["channel 2", "not declared"]
    else:  # png_channel_shape
        Image.fromarray(np.zeros((9, 9), np.uint8)).save(ch1)
        named += ["shape", "one grid"]
    out = tmp_path / "out"
    assert_failed_cleanly(run_prepare("nnunet", task, out, size=SIZE), capsys, out, *named)


def test_config_labels_must_match_dataset_json(tmp_path, capsys):
    from jointseg.data.prepare import Settings, prepare
    from jointseg.io_utils import UserError

    task = make_nnunet_dataset(tmp_path / "raw", ndim=3, channels=1, cases=4, seed=0)
    with pytest.raises(UserError, match="disagree"):
        prepare(
            task,
            tmp_path / "o",
            Settings(dataset="s", format="nnunet", size=(SIZE, SIZE), labels={"0": "background", "1": "a", "2": "b"}),
        )
    manifest = prepare(
        task,
        tmp_path / "o",
        Settings(dataset="s", format="nnunet", size=(SIZE, SIZE), labels={"0": "bg", "1": "lesion"}),
    )
    assert manifest["labels"] == {"0": "bg", "1": "lesion"}  # the config names dataset.json's classes


def test_local_folder_source_through_download_and_prepare_with_config(tmp_path):
    """A config data set whose source is a local nnU-Net folder: hashed in place, prepared from there."""
    import yaml

    task = make_nnunet_dataset(tmp_path / "byo", ndim=3, channels=2, cases=5, seed=4)
    config = tmp_path / "config" / "config.yaml"
    config.parent.mkdir()
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "datasets": {
                    "byo": {
                        "format": "nnunet",
                        "sources": [{"url": str(task)}],
                        "lock_file": str(tmp_path / "lock.json"),
                        "size": [SIZE, SIZE],
                        "labels": {"0": "background", "1": "tumor"},
                    }
                },
            }
        )
    )
    assert cli(["download", "byo", "--config", str(config)]) == 0
    raw = tmp_path / "data" / "raw" / "byo"
    marker = json.loads((raw / ".complete.json").read_text())
    assert marker["sources"][0]["path"] == str(task.resolve()) and len(marker["sources"][0]["files"]) == 16
    assert [p.name for p in raw.iterdir()] == [".complete.json"]  # read in place: nothing copied
    assert cli(["prepare", "byo", "--config", str(config)]) == 0
    entry = load_config(config)["datasets"]["byo"]
    prepared = paths.prepared_dir(tmp_path / "data", "byo", preparation_key(entry))  # the default --out
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["in_channels"] == 2 and len(manifest["cases"]) == 5
    assert manifest["cases"][0]["source_images"][0] == "imagesTr/synth_000_0000.nii.gz"  # relative to the folder
    # A --size override is another preparation: its own keyed folder; the first one stays.
    assert cli(["prepare", "byo", "--config", str(config), "--size", str(2 * SIZE)]) == 0
    bigger = paths.prepared_dir(tmp_path / "data", "byo", preparation_key({**entry, "size": [2 * SIZE] * 2}))
    assert bigger != prepared and (prepared / "manifest.json").is_file()
    assert json.loads((bigger / "manifest.json").read_text())["preprocess"]["size"] == [2 * SIZE] * 2


def test_rgb_png_is_three_channels_and_palette_labels_are_indices(tmp_path):
    task = make_nnunet_dataset(tmp_path / "raw", ndim=2, channels=1, cases=4, seed=5)
    for path in (task / "imagesTr").iterdir():
        grey = np.asarray(Image.open(path))
        Image.fromarray(np.stack([grey, grey // 2, 255 - grey], -1)).save(path)  # one RGB file
    for path in (task / "labelsTr").iterdir():
        pal = Image.fromarray(np.asarray(Image.open(path))).convert("P")
        pal.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)  # class 1 drawn red: its grey value is not 1
        pal.save(path)
    meta = json.loads((task / "dataset.json").read_text())
    meta["channel_names"] = {"0": "R", "1": "G", "2": "B"}
    (task / "dataset.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    assert run_prepare("nnunet", task, out, size=SIZE) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["in_channels"] == 3
    case = manifest["cases"][0]
    assert np.load(out / case["image"]).shape == (3, SIZE, SIZE)
    assert set(case["label_values"]) == {0, 1}
