"""Config loading: schema validation with one-line errors, defaults, run resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from jointseg.architectures import ARCHITECTURES
from jointseg.cli import main as cli_main
from jointseg.config import deep_merge, load_config, resolve_run, run_names, validate_config
from jointseg.io_utils import UserError
from jointseg.variants import VARIANTS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "config" / "config.yaml", ROOT / "config" / "paper.yaml"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate_and_fill_defaults(path):
    config = load_config(path)
    assert config["datasets"], "a study needs data sets"
    assert config["train"]["betas"] == [0.9, 0.99]
    assert config["predict"]["overlap"] == 0.25  # default filled from the schema
    for ds in config["datasets"].values():
        assert ds["split"]["rule"] in ("official", "seeded")


def test_paper_config_uses_the_paper_training_setting():
    train = load_config(CONFIGS[1])["train"]
    assert (train["iterations"], train["batch_size"], train["lr"]) == (30000, 4, 0.001)


def _minimal() -> dict:
    return {"datasets": {"d": {"format": "isic", "sources": [{"url": "x.zip"}]}}}


def test_unknown_key_is_one_clear_line():
    cfg = _minimal() | {"trian": {}}
    with pytest.raises(UserError) as err:
        validate_config(cfg, source="my.yaml")
    msg = str(err.value)
    assert "\n" not in msg and "my.yaml" in msg and "trian" in msg


def test_wrong_type_names_the_key():
    cfg = deep_merge(_minimal(), {"train": {"iterations": "many"}})
    with pytest.raises(UserError, match=r"train\.iterations"):
        validate_config(cfg, source="my.yaml")


def test_unknown_variant_is_refused():
    cfg = _minimal() | {"variants": ["joint", "magic"]}
    with pytest.raises(UserError, match="magic"):
        validate_config(cfg)


def test_variants_and_architectures_are_two_name_spaces():
    """A run's name says what it is: an attention variant, or a network trained as a baseline."""
    assert set(VARIANTS).isdisjoint(ARCHITECTURES)


def test_a_network_without_attention_cannot_carry_variants():
    cfg = deep_merge(_minimal(), {"model": {"arch": "unet_pp"}, "variants": ["none", "joint"]})
    with pytest.raises(UserError, match=r"'model\.arch'.*unet_pp takes no attention variant.*'baselines'"):
        validate_config(cfg, source="my.yaml")
    assert validate_config({**cfg, "variants": ["none"]})["model"]["arch"] == "unet_pp"


def test_every_network_of_the_study_has_the_preset():
    cfg = deep_merge(_minimal(), {"model": {"preset": "h_denseunet_hybrid"}, "baselines": ["unet"]})
    with pytest.raises(UserError, match=r"'model\.preset': unet has no preset 'h_denseunet_hybrid'"):
        validate_config(cfg, source="my.yaml")


def test_resolve_run_precedence():
    cfg = validate_config(
        deep_merge(
            _minimal(),
            {
                "train": {"iterations": 100, "lr": 0.01},
                "datasets": {"d": {"train": {"iterations": 50}}},
                "variant_overrides": {"self": {"train": {"lr": 0.5}}},
            },
        )
    )
    joint = resolve_run(cfg, "d", "joint", 3)
    selfv = resolve_run(cfg, "d", "self", 3)
    assert joint["train"]["iterations"] == 50 and joint["train"]["lr"] == 0.01
    assert selfv["train"]["lr"] == 0.5 and selfv["train"]["iterations"] == 50
    assert joint["model"]["attention"] == "joint" and joint["seed"] == 3


def test_baseline_run_uses_its_architecture():
    cfg = validate_config(_minimal() | {"baselines": ["unet"]})
    run = resolve_run(cfg, "d", "unet", 0)
    assert run["model"]["arch"] == "unet" and run["model"]["attention"] == "none"
    assert run_names(cfg)[-1] == "unet"


def test_resolve_cli_writes_json_and_rejects_bad_config(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert (
        cli_main(
            [
                "resolve",
                "--config",
                str(CONFIGS[0]),
                "--dataset",
                "demo_isic",
                "--variant",
                "joint",
                "--seed",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["model"]["attention"] == "joint"

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_minimal() | {"seeds": "zero"}))
    assert (
        cli_main(
            [
                "resolve",
                "--config",
                str(bad),
                "--dataset",
                "d",
                "--variant",
                "joint",
                "--seed",
                "0",
                "--out",
                str(tmp_path / "x.json"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "seeds" in err and "Traceback" not in err
    assert not (tmp_path / "x.json").exists()
