"""The training recipe as the config states it: the author's (constant lr, plain cross-entropy,
no augmentation) and ours (poly, CE + Dice, augmentation) reach the built run unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import SIZE, prepare_demo, tiny_run_config


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    return prepare_demo(tmp_path_factory.mktemp("demo"))


def train_images(prepared: Path) -> list[tuple]:
    """The stored training images and labels (32x32: a crop at the training size is the whole image)."""
    manifest = json.loads((prepared / "manifest.json").read_text())
    return [
        (np.load(prepared / c["image"]), np.load(prepared / c["label"]))
        for c in manifest["cases"]
        if c["split"] == "train"
    ]


def is_stored(image, label, stored: list[tuple]) -> bool:
    return any(np.array_equal(image, si) and np.array_equal(label, sl) for si, sl in stored)


def test_author_recipe_is_built_from_the_config(demo_data, tmp_path):
    """``scheduler: constant``, ``loss: ce``, ``augment.enabled: false`` reach the run as such:
    plain cross-entropy, an lr that never moves, batches that are the stored images untouched."""
    from jointseg.training.build import build
    from jointseg.training.losses import CEDiceLoss, CELoss

    cpu = torch.device("cpu")
    author = build(
        tiny_run_config(demo_data, scheduler="constant", loss="ce", augment={"enabled": False}),
        tmp_path / "author",
        cpu,
    )
    assert isinstance(author.loss_fn, CELoss)
    lr = author.optimizer.param_groups[0]["lr"]
    for _ in range(10):
        author.optimizer.step()
        author.scheduler.step()
        assert author.optimizer.param_groups[0]["lr"] == lr
    stored = train_images(demo_data / "prepared" / "demo_isic")
    assert stored[0][0].shape[-2:] == (SIZE, SIZE)
    for t in range(4):
        images, labels = author.batches[t]
        assert all(is_stored(i, l, stored) for i, l in zip(images, labels)), t

    ours = build(tiny_run_config(demo_data), tmp_path / "ours", cpu)  # config.yaml: augmentation on
    assert isinstance(ours.loss_fn, CEDiceLoss)
    assert isinstance(ours.scheduler, torch.optim.lr_scheduler.PolynomialLR)
    samples = [pair for t in range(4) for pair in zip(*ours.batches[t])]
    assert not any(is_stored(i, l, stored) for i, l in samples)  # the check above can fail
