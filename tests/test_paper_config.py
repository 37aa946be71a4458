"""config/paper.yaml holds the study the paper's claims need: every comparator and the author's protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jointseg.architectures import baselines
from jointseg.config import load_config, resolve_run
from jointseg.models import build_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config(ROOT / "config" / "paper.yaml")


def test_every_variant_and_cited_comparator(paper):
    assert paper["variants"] == ["none", "pointwise", "self", "joint", "joint_sum", "parallel", "self_pair", "cbam"]
    assert paper["baselines"] == ["unet", "unet_pp", "attention_unet", "nonlocal_unet"]
    assert set(paper["baselines"]) == set(baselines())
    assert paper["model"]["preset"] == "paper" and paper["seeds"] == [0, 1, 2]


def test_the_authors_recipe_and_checkpoint_protocol(paper):
    train = paper["train"]
    assert (train["iterations"], train["batch_size"], train["lr"], train["betas"]) == (30000, 4, 0.001, [0.9, 0.99])
    assert (train["scheduler"], train["loss"], train["augment"]["enabled"]) == ("constant", "ce", False)
    # DACN saves every 500 iterations and scores each saved checkpoint on validation
    assert train["val_every"] == 500 and train["checkpoint_every"] == 500
    assert paper["predict"]["checkpoint"] == "best"  # chosen on validation only
    assert load_config(ROOT / "config" / "paper.yaml", {"predict": {"checkpoint": "final"}})["predict"] == {
        **paper["predict"],
        "checkpoint": "final",
    }


@pytest.mark.parametrize("dataset", ["isic2017", "msd_hippocampus"])
def test_every_baseline_builds_at_the_studys_sizes(paper, dataset):
    """Each baseline run resolves to its own arch, no attention, the paper preset, and fits the crop size."""
    for arch in paper["baselines"]:
        run = resolve_run(paper, dataset, arch, 0)
        assert (run["model"]["arch"], run["model"]["attention"], run["model"]["preset"]) == (arch, "none", "paper")
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = build_model(
                arch=arch,
                preset=run["model"]["preset"],
                attention=run["model"]["attention"],
                attention_level=run["model"]["attention_level"],
                input_size=tuple(run["size"]),
                attention_options=run["model"]["attention_options"],
            )
        assert model.input_size == tuple(run["size"])
