"""TrainBatches / eval_cases: shapes, determinism as a pure function of (seed, t), workers, 3-D sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jointseg.config import load_config
from jointseg.data.download import download_dataset
from jointseg.data.loader import NO_AUGMENT, TrainBatches, augment_settings, eval_cases, warp
from jointseg.data.prepare import Settings, prepare
from jointseg.data.sources import Source
from jointseg.io_utils import UserError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "pipeline_src" / "jointseg" / "data" / "demo"
# the demo study's schema-filled train.augment, as training passes it
AUG = load_config(ROOT / "config" / "config.yaml")["train"]["augment"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The two demo sets, downloaded from the embedded archives and prepared at 64x64."""
    work = tmp_path_factory.mktemp("loader")
    out = {}
    isic = [Source(url=str(p), name=p.name) for p in sorted((DEMO / "isic").glob("*.zip"))]
    msd = [Source(url=str(DEMO / "Task99_DemoHippocampus.tar"), name="Task99_DemoHippocampus.tar")]
    for name, fmt, sources in (("isic", "isic", isic), ("msd", "msd", msd)):
        download_dataset(name, sources, work / "raw" / name)
        prepare(work / "raw" / name, work / name, Settings(dataset=name, format=fmt, size=(64, 64)))
        out[name] = work / name
    return out


@pytest.mark.parametrize("name,channels", [("isic", 3), ("msd", 1)])
def test_batch_shapes_and_values(prepared, name, channels):
    image, label = TrainBatches(prepared[name], "train", 4, (64, 64), AUG, seed=0)[7]
    assert image.shape == (4, channels, 64, 64) and image.dtype == np.float32
    assert label.shape == (4, 64, 64) and label.dtype == np.int64
    assert np.isfinite(image).all()
    assert set(np.unique(label)) <= ({0, 1} if name == "isic" else {0, 1, 2})


@pytest.mark.parametrize("name", ["isic", "msd"])
def test_batches_are_a_pure_function_of_seed_and_t(prepared, name):
    a = TrainBatches(prepared[name], "train", 4, (64, 64), AUG, seed=1)
    b = TrainBatches(prepared[name], "train", 4, (64, 64), AUG, seed=1)
    for t in (5, 0, 123456):  # any order, a fresh object: same batch
        assert all(np.array_equal(x, y) for x, y in zip(a[t], b[t]))
    assert not np.array_equal(a[0][0], a[1][0])
    c = TrainBatches(prepared[name], "train", 4, (64, 64), AUG, seed=2)
    assert not np.array_equal(a[3][0], c[3][0])


def test_same_batches_through_dataloader_workers(prepared):
    import torch

    batches = TrainBatches(prepared["msd"], "train", 4, (64, 64), AUG, seed=0)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, sampler=range(3, 7), num_workers=2)
    for t, (image, label) in zip(range(3, 7), loader):
        ref_image, ref_label = batches[t]
        assert torch.equal(image, torch.from_numpy(ref_image))
        assert torch.equal(label, torch.from_numpy(ref_label))


def test_epochs_visit_every_case_once_and_plain_crop_is_exact(prepared):
    batches = TrainBatches(prepared["isic"], "train", 4, (64, 64), None, seed=0)
    n = len(batches.cases)
    assert sorted(batches._case_index(k) for k in range(n)) == list(range(n))
    assert sorted(batches._case_index(k) for k in range(n, 2 * n)) == list(range(n))
    image, label = batches[0]
    for b in range(4):
        case = batches.cases[batches._case_index(b)]
        assert np.array_equal(image[b], np.load(prepared["isic"] / case["image"]))
        assert np.array_equal(label[b], np.load(prepared["isic"] / case["label"]))


def test_3d_slices_biased_to_foreground_and_smaller_crop(prepared):
    batches = TrainBatches(prepared["msd"], "train", 4, (48, 48), None, seed=0)
    with_fg = [bool((lab > 0).any()) for t in range(40) for lab in batches[t][1]]
    assert np.mean(with_fg) > 0.6  # 2/3 drawn from foreground slices, plus random hits
    assert batches[0][0].shape == (4, 1, 48, 48)
    with pytest.raises(UserError, match="smaller than the crop"):
        TrainBatches(prepared["msd"], "train", 4, (96, 96), None, seed=0)


def test_augment_settings_take_the_schema_filled_dict():
    assert AUG["enabled"] and augment_settings(AUG) == {k: AUG[k] for k in NO_AUGMENT}
    assert augment_settings({**AUG, "enabled": False}) == NO_AUGMENT
    assert augment_settings(None) == NO_AUGMENT
    with pytest.raises(ValueError, match="schema-filled"):  # a partial dict is refused, not completed
        augment_settings({"enabled": True, "flip": True})


def test_disabled_augment_gives_plain_crops(prepared):
    off = TrainBatches(prepared["isic"], "train", 2, (64, 64), {**AUG, "enabled": False}, seed=0)
    plain = TrainBatches(prepared["isic"], "train", 2, (64, 64), None, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(off[1], plain[1]))


def test_warp_identity_and_flip():
    rng = np.random.default_rng(0)
    image, label = rng.random((2, 8, 9)).astype(np.float32), rng.integers(0, 3, (8, 9))
    img, lab = warp(image, label, np.eye(2), np.zeros(2), (8, 9))
    assert np.allclose(img, image) and np.array_equal(lab, label)
    img, lab = warp(image, label, np.diag([1.0, -1.0]), np.array([0.0, 8.0]), (8, 9))
    assert np.allclose(img, image[:, :, ::-1]) and np.array_equal(lab, label[:, ::-1])


@pytest.mark.parametrize("name", ["isic", "msd"])
def test_eval_cases(prepared, name):
    cases = list(eval_cases(prepared[name], "val"))
    assert cases and [c[0] for c in cases] == sorted(c[0] for c in cases)
    _, image, label = cases[0]
    if name == "isic":
        assert image.shape == (1, 3, 64, 64) and label.shape == (1, 64, 64)
    else:
        assert image.ndim == 4 and image.shape[1] == 1 and label.shape == (image.shape[0], *image.shape[2:])
    with pytest.raises(UserError, match="no cases"):
        list(eval_cases(prepared[name], "nonexistent"))


def test_two_channel_volumes(tmp_path):
    """nnU-Net channel files: every slice keeps both channels, augmented or plainly cropped."""
    from nnunet_helpers import make_nnunet_dataset

    task = make_nnunet_dataset(tmp_path / "raw", ndim=3, channels=2, cases=5, seed=2)
    prepare(task, tmp_path / "p", Settings(dataset="two", format="nnunet", size=(16, 16)))
    image, label = TrainBatches(tmp_path / "p", "train", 3, (16, 16), AUG, seed=0)[2]
    assert image.shape == (3, 2, 16, 16) and label.shape == (3, 16, 16) and np.isfinite(image).all()
    plain = TrainBatches(tmp_path / "p", "train", 3, (16, 16), None, seed=0)
    image, label = plain[0]
    case = plain.cases[plain._case_index(0)]
    slices = np.load(tmp_path / "p" / case["image"])
    # a plain crop is a window of one stored slice, both channels together
    hits = [
        s
        for s in range(slices.shape[0])
        for y in range(slices.shape[2] - 15)
        for x in range(slices.shape[3] - 15)
        if np.array_equal(slices[s, :, y : y + 16, x : x + 16], image[0])
    ]
    assert hits
