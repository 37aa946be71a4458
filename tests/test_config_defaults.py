"""Schema defaults filled by jsonschema's extending-validator recipe: where they land and where not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jointseg.config import deep_merge, load_config, schema, validate_config

ROOT = Path(__file__).resolve().parents[1]
SOURCE = {"url": "x.zip"}


def _minimal() -> dict:
    return {"datasets": {"d": {"format": "isic", "sources": [dict(SOURCE)]}}}


def _defaults_under(node: object, keywords: tuple[str, ...], inside: bool = False) -> list[str]:
    """Property names with a ``default`` anywhere below one of ``keywords`` in a schema node."""
    found = []
    if isinstance(node, dict):
        if inside and "default" in node:
            found.append(str(node.get("description", "?"))[:40])
        for key, sub in node.items():
            found += _defaults_under(sub, keywords, inside or key in keywords)
    elif isinstance(node, list):
        for sub in node:
            found += _defaults_under(sub, keywords, inside)
    return found


def test_missing_ref_sections_get_their_defaults():
    cfg = validate_config(_minimal())
    # model and train are $ref'd: their defaults ({}) live in $defs, then fill inside
    assert cfg["model"]["arch"] == "denseunet" and cfg["model"]["attention_options"]["chunk"] == 512
    assert cfg["train"]["augment"] == {
        "enabled": True,
        "flip": True,
        "rotate": 15,
        "scale": [0.9, 1.1],
        "intensity": 0.1,
        "color": 0.05,
    }
    assert cfg["predict"] == {"checkpoint": "final", "probabilities": False, "overlap": 0.25}
    assert cfg["mlflow"] == {"tracking_uri": None} and cfg["variant_overrides"] == {}


def test_each_dataset_entry_and_its_sources_are_filled():
    cfg = validate_config(deep_merge(_minimal(), {"datasets": {"e": {"format": "msd", "sources": [dict(SOURCE)]}}}))
    for entry in cfg["datasets"].values():
        assert entry["split"] == {"rule": "seeded", "seed": 0, "fractions": [0.6, 0.2, 0.2]}
        assert entry["size"] == [64, 64] and entry["slice_axis"] == 2 and entry["labels"] is None
        assert entry["model"] == {} and entry["train"] == {}
        assert entry["sources"] == [{**SOURCE, "split": "all", "sha256": None}]  # no code repeats these defaults


def test_given_values_win_and_overrides_are_not_filled():
    cfg = validate_config(
        deep_merge(
            _minimal(),
            {"train": {"augment": {"enabled": False}}, "variant_overrides": {"self": {"train": {"lr": 0.5}}}},
        )
    )
    assert cfg["train"]["augment"]["enabled"] is False and cfg["train"]["augment"]["rotate"] == 15
    assert cfg["variant_overrides"] == {"self": {"train": {"lr": 0.5}}}  # a deep override, not a section


def test_defaults_are_copies_and_the_input_is_untouched():
    given = _minimal()
    first = validate_config(given)
    assert given == _minimal()
    first["train"]["betas"].append(0.5)
    first["datasets"]["d"]["split"]["fractions"][0] = 0.9
    second = validate_config(_minimal())
    assert second["train"]["betas"] == [0.9, 0.99] and second["datasets"]["d"]["split"]["fractions"][0] == 0.6
    assert schema()["$defs"]["train"]["properties"]["betas"]["default"] == [0.9, 0.99]


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_filling_is_idempotent(name):
    cfg = load_config(ROOT / "config" / name)
    assert validate_config(cfg) == cfg


def test_overlay_keeps_the_base_study_and_fills_the_rest():
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    ours = yaml.safe_load((ROOT / "config" / "recipe_ours.yaml").read_text())
    cfg = validate_config(deep_merge(paper, ours))
    assert cfg["study"] == "paper_recipe_ours" and cfg["train"]["iterations"] == 30000
    assert cfg["train"]["augment"]["enabled"] is True and cfg["train"]["weight_decay"] == 0.0


def test_no_default_hides_in_a_branch_the_filler_skips():
    """Defaults under oneOf/anyOf/if/not would be applied by the recipe even for a failing branch;
    the filler skips those keywords, so a default placed there would silently never be filled."""
    keywords = ("oneOf", "anyOf", "if", "then", "else", "not", "dependentSchemas")
    assert _defaults_under(schema(), keywords) == []
    # the check itself finds one
    assert _defaults_under({"oneOf": [{"type": "object", "default": {}}]}, keywords) == ["?"]
