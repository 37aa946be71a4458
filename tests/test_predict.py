"""Inference: tiny trained models on the demo data -> predict -> evaluate, 2-D and 3-D;
multi-channel cases (nnU-Net channel files, MSD 4-D) with untrained models.

The 3-D demo slices (40x36 in-plane) are larger than the 32x32 training size,
so the sliding window tiles them; NIfTI outputs must keep the input's shape and
(non-identity) affine.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from msd_helpers import make_msd, run_prepare
from nnunet_helpers import make_nnunet_dataset
from training_helpers import prepare_demo, run_train, tiny_run_config

from jointseg.cli import main as cli_main
from jointseg.evaluation.metrics import case_dice
from jointseg.inference.inputs import case_files, group_cases
from jointseg.inference.predict import case_id, list_inputs, predict_files
from jointseg.io_utils import UserError
from jointseg.models.sliding_window import sliding_probabilities


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny trained checkpoints of both demo data sets: {dataset: (prepared dir, best.pt)}."""
    base = tmp_path_factory.mktemp("predict")
    data = prepare_demo(base)
    out = {}
    for dataset in ("demo_isic", "demo_msd"):
        rc = tiny_run_config(data, dataset, iterations=4, val_every=4, checkpoint_every=4)
        run_dir = base / "results" / dataset
        run_train(rc, run_dir)
        out[dataset] = (data / "prepared" / dataset, run_dir / "checkpoints" / "best.pt")
    return out


def predict_cli(ckpt, images, out) -> int:
    """``jointseg predict`` of a folder with probabilities, one thread, no progress bar; the exit code."""
    args = ["--checkpoint", str(ckpt), "--input", str(images), "--out", str(out), "--probabilities"]
    return cli_main(["predict", *args, "--no-progress", "--threads", "1"])


def test_case_id_and_inputs(tmp_path):
    assert case_id("a/ISIC_0001.jpg") == "ISIC_0001" and case_id("hippocampus_001.nii.gz") == "hippocampus_001"
    with pytest.raises(UserError, match="no PNG/JPEG/NIfTI"):
        list_inputs(tmp_path)
    with pytest.raises(UserError, match="input not found"):
        list_inputs(tmp_path / "missing")


def test_sliding_window_covers_large_inputs_and_dice():
    """A 1x1-conv 'model' is translation invariant: tiling must reproduce it exactly."""
    conv = torch.nn.Conv2d(1, 3, 1)
    x = torch.randn(2, 1, 45, 37)
    probs = sliding_probabilities(conv, x, (16, 16), torch.device("cpu"), overlap=0.25)
    assert probs.shape == (2, 3, 45, 37)
    with torch.no_grad():
        expected = torch.softmax(conv(x), 1)
    assert torch.allclose(probs, expected, atol=1e-5)
    ref = np.zeros((4, 4), np.uint8)
    ref[:2] = 1
    assert case_dice(ref, ref, 3).tolist() == [1.0, 1.0]  # class 2 empty in both -> 1 (policy)
    assert case_dice(np.zeros_like(ref), ref, 2).tolist() == [0.0]


def test_predict_2d_then_evaluate(trained, tmp_path, capsys):
    from PIL import Image

    from jointseg.evaluation.evaluate import evaluate_folders

    prepared, ckpt = trained["demo_isic"]
    images = prepared / "test" / "images"
    out = tmp_path / "pred"
    assert predict_cli(ckpt, images, out) == 0
    assert re.search(r"predict loop: \d+ case\(s\) in [0-9.]+ s", capsys.readouterr().err)
    inputs = sorted(images.iterdir())
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{case_id(p)}.png" for p in inputs)
    for src in inputs[:3]:
        with Image.open(src) as im:
            w, h = im.size
        pred = np.asarray(Image.open(out / f"{case_id(src)}.png"))
        assert pred.shape == (h, w) and pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1}
        prob = np.load(out / "probabilities" / f"{case_id(src)}_prob.npy")
        assert prob.shape == (2, h, w) and np.allclose(prob.sum(0), 1, atol=1e-4)
        assert np.array_equal(prob.argmax(0), pred)
    metrics = evaluate_folders(out, prepared / "test" / "labels", progress=False)
    assert len(metrics["case"].unique()) == len(inputs)
    assert metrics["dice"].between(0, 1).all()
    assert not list(out.rglob("*.tmp-*"))


def test_predict_3d_keeps_shape_and_affine(trained, tmp_path):
    import nibabel as nib

    from jointseg.evaluation.evaluate import evaluate_folders

    prepared, ckpt = trained["demo_msd"]
    images = sorted((prepared / "test" / "images").iterdir())
    out = tmp_path / "pred3d"
    written = predict_files(ckpt, images[:2], out, probabilities=True, progress=False, threads=1)
    assert [p.name for p in written] == [f"{case_id(p)}.nii.gz" for p in images[:2]]
    for src, dst in zip(images[:2], written):
        a, b = nib.load(str(src)), nib.load(str(dst))
        assert not np.allclose(a.affine, np.eye(4))  # the demo volumes are oblique: a real test
        assert b.shape == a.shape and np.allclose(b.affine, a.affine, atol=1e-5)
        assert nib.aff2axcodes(b.affine) == nib.aff2axcodes(a.affine)
        labels = np.asarray(b.dataobj)
        assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}
        prob = nib.load(str(out / "probabilities" / f"{case_id(src)}_prob.nii.gz"))
        assert prob.shape == (*a.shape, 3) and np.allclose(prob.affine, a.affine, atol=1e-5)
        assert np.array_equal(np.asarray(prob.dataobj).argmax(-1), labels)
    ref = tmp_path / "ref"
    ref.mkdir()
    for src in images[:2]:
        (ref / src.name).write_bytes((prepared / "test" / "labels" / src.name).read_bytes())
    metrics = evaluate_folders(out, ref, progress=False)
    assert set(metrics["class"]) == {1, 2} and metrics["dice"].between(0, 1).all()


def test_predict_errors_are_clear(trained, tmp_path, capsys):
    prepared, ckpt = trained["demo_isic"]
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert (
        cli_main(
            [
                "predict",
                "--checkpoint",
                str(ckpt),
                "--input",
                str(bad),
                "--output",  # the old flag
                str(tmp_path / "o"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "broken.png" in capsys.readouterr().err
    assert not (tmp_path / "o" / "broken.png").exists()
    nifti = next((trained["demo_msd"][0] / "test" / "images").iterdir())
    with pytest.raises(UserError, match="trained on 2-D"):
        predict_files(ckpt, [nifti], tmp_path / "o", progress=False)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        predict_files(junk, [nifti], tmp_path / "o", progress=False)


# --------------------------------------------------------------------------- several channels


def untrained_checkpoint(prepared, path):
    """A checkpoint of an untrained network for a prepared data set (geometry tests need no training)."""
    import json

    from jointseg.models import build_model
    from jointseg.training.checkpoint import save_checkpoint

    manifest = json.loads((prepared / "manifest.json").read_text())
    kwargs = {
        "arch": "denseunet",
        "preset": "small",
        "in_channels": manifest["in_channels"],
        "num_classes": manifest["num_classes"],
        "attention": "none",
        "attention_level": "bottleneck",
        "input_size": list(manifest["size"]),
        "attention_options": {},
    }
    torch.manual_seed(0)
    model = build_model(**{**kwargs, "input_size": tuple(kwargs["input_size"])})
    return save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "model_kwargs": kwargs,
            "preprocess": manifest["preprocess"],
            "labels": manifest["labels"],
            "config": {},
        },
    )


def _prepared_nnunet(tmp_path, ndim):
    task = make_nnunet_dataset(tmp_path / "raw", ndim=ndim, channels=2, cases=6, seed=ndim)
    prepared = tmp_path / "prepared"
    assert run_prepare("nnunet", task, prepared) == 0
    return task, prepared, untrained_checkpoint(prepared, tmp_path / "ckpt.pt")


def test_predict_nnunet_3d_two_channels_keeps_geometry(tmp_path):
    import nibabel as nib

    task, prepared, ckpt = _prepared_nnunet(tmp_path, 3)
    images = prepared / "test" / "images"
    out = tmp_path / "pred"
    assert predict_cli(ckpt, images, out) == 0
    labels = sorted(p.name for p in (prepared / "test" / "labels").iterdir())
    assert sorted(p.name for p in out.glob("*.nii.gz")) == labels  # one output per case, not per channel
    for name in labels:
        ref, pred = nib.load(str(prepared / "test" / "labels" / name)), nib.load(str(out / name))
        assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine, atol=1e-5)
        assert nib.aff2axcodes(pred.affine) == nib.aff2axcodes(ref.affine) != ("R", "A", "S")
        prob = nib.load(str(out / "probabilities" / name.replace(".nii.gz", "_prob.nii.gz")))
        assert prob.shape == (*ref.shape, 2)
        assert np.array_equal(np.asarray(prob.dataobj).argmax(-1), np.asarray(pred.dataobj))


def test_predict_nnunet_2d_two_channels_and_channel_grouping(tmp_path):
    from PIL import Image

    task, prepared, ckpt = _prepared_nnunet(tmp_path, 2)
    spec = torch.load(ckpt, weights_only=True)["preprocess"]
    first = task / "imagesTr" / "synth_001_0000.png"
    # one channel file is enough: the others are found beside it
    assert group_cases([first], spec) == [("synth_001", [first, task / "imagesTr" / "synth_001_0001.png"])]
    assert case_files(task / "imagesTr", "synth_001", spec) == group_cases([first], spec)[0][1]
    written = predict_files(ckpt, [first], tmp_path / "pred", progress=False, threads=1)
    assert [p.name for p in written] == ["synth_001.png"]
    with Image.open(first) as im:
        assert np.asarray(Image.open(written[0])).shape == (im.size[1], im.size[0])
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "synth_009_0000.png").write_bytes(first.read_bytes())
    with pytest.raises(UserError, match="synth_009_0001.png: channel file missing for case 'synth_009'"):
        predict_files(ckpt, list_inputs(lonely), tmp_path / "pred2", progress=False)
    assert not (tmp_path / "pred2").exists()


def test_predict_msd_4d_multimodal_keeps_geometry(tmp_path):
    import nibabel as nib

    src = make_msd(tmp_path / "raw", modalities=2)
    prepared = tmp_path / "prepared"
    assert run_prepare("msd", src, prepared) == 0
    ckpt = untrained_checkpoint(prepared, tmp_path / "ckpt.pt")
    images = sorted((prepared / "test" / "images").iterdir())
    written = predict_files(ckpt, images, tmp_path / "pred", progress=False, threads=1)
    for src_path, dst in zip(images, written):
        a, b = nib.load(str(src_path)), nib.load(str(dst))
        assert a.shape[3] == 2 and b.shape == a.shape[:3] and np.allclose(b.affine, a.affine, atol=1e-5)
    single = tmp_path / "single.nii.gz"  # one modality given to a two-modality checkpoint
    nib.save(
        nib.Nifti1Image(np.asarray(nib.load(str(images[0])).dataobj)[..., 0], nib.load(str(images[0])).affine),
        str(single),
    )
    with pytest.raises(UserError, match="1 channel"):
        predict_files(ckpt, [single], tmp_path / "pred3", progress=False)
