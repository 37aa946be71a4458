"""Bring your own data: a 2-channel nnU-Net v2 raw data set through the whole workflow.

The study config is the README's three lines per data set (format, sources, labels
from dataset.json) plus a quick training; everything else is the schema's defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from nnunet_helpers import make_nnunet_dataset
from workflow_helpers import QUICK_TRAIN, project_copy, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def byo_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("byo")
    source = make_nnunet_dataset(root / "raw", ndim=3, channels=2, cases=10, seed=3)
    project = project_copy(root / "project")
    config = {
        "study": "byo",
        "datasets": {"my_task": {"format": "nnunet", "sources": [{"url": str(source)}], "size": [32, 32]}},
        "variants": ["none", "joint"],
        "model": {"preset": "small", "attention_level": 8},
        "train": QUICK_TRAIN,
    }
    (project / "config" / "byo.yaml").write_text(yaml.safe_dump(config))
    snakemake(project, "--configfile", "config/byo.yaml", "--cores", "2", "--resources", "gpu=1", timeout=1500)
    return project, source


def _prepared(project) -> Path:
    """The prepared folder the runs trained on (their run_config's ``prepared_dir``, keyed by the settings)."""
    rc = json.loads((project / "results" / "byo" / "my_task" / "joint" / "seed0" / "run_config.json").read_text())
    assert Path(rc["prepared_dir"]).parent == Path("data") / "prepared" / "my_task"
    return project / rc["prepared_dir"]


def test_two_channels_reach_the_model(byo_study):
    project, _ = byo_study
    manifest = json.loads((_prepared(project) / "manifest.json").read_text())
    assert manifest["in_channels"] == 2 and manifest["format"] == "nnunet"
    assert manifest["labels"] == {"0": "background", "1": "tumor"}  # from dataset.json
    import torch

    ckpt = torch.load(
        project / "results" / "byo" / "my_task" / "joint" / "seed0" / "checkpoints" / "final.pt",
        weights_only=True,
        map_location="cpu",
    )
    assert ckpt["model_kwargs"]["in_channels"] == 2
    first_conv = next(v for v in ckpt["model"].values() if v.ndim == 4)  # registration order: the stem's first conv
    assert first_conv.shape[1] == 2


def test_predictions_keep_the_reference_geometry_and_are_scored(byo_study):
    project, _ = byo_study
    run = project / "results" / "byo" / "my_task" / "joint" / "seed0"
    labels = _prepared(project) / "test" / "labels"
    refs = sorted(labels.glob("*.nii.gz"))
    assert refs
    for ref in refs:
        pred = nib.load(run / "predictions" / ref.name)
        want = nib.load(ref)
        assert pred.shape == want.shape
        np.testing.assert_allclose(pred.affine, want.affine, atol=1e-4)
    metrics = pd.read_csv(run / "metrics.csv", dtype={"case": str})
    assert sorted(set(metrics["case"])) == sorted(r.name[: -len(".nii.gz")] for r in refs)
    assert set(metrics[["dataset", "variant"]].itertuples(index=False, name=None)) == {("my_task", "joint")}
    summary = pd.read_csv(project / "results" / "byo" / "summary" / "summary.csv")
    assert set(summary["variant"]) == {"none", "joint"}
