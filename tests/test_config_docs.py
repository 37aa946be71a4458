"""config/README.md is generated from the schema and must be up to date."""

from __future__ import annotations

from pathlib import Path

from jointseg.config import schema
from jointseg.config_docs import render

ROOT = Path(__file__).resolve().parents[1]


def _keys(node: dict, root: dict, prefix: str = "") -> list[str]:
    """Every key path of the schema, walked independently of the renderer."""
    out = []
    for key, sub in node.get("properties", {}).items():
        if "$ref" in sub:
            sub = root["$defs"][sub["$ref"].split("/")[-1]]
        out.append(prefix + key)
        out += _keys(sub, root, f"{prefix}{key}.")
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict):
            if "$ref" in extra:
                extra = root["$defs"][extra["$ref"].split("/")[-1]]
            out += _keys(extra, root, f"{prefix}{key}.<name>.")
    return out


def test_committed_config_readme_is_current():
    committed = (ROOT / "config" / "README.md").read_text()
    assert committed == render(), "regenerate with: jointseg config-docs --out config/README.md"


def test_every_schema_key_is_documented_with_a_meaning():
    text = render()
    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[4].strip()
        for line in text.splitlines()
        if line.startswith("| `")
    }
    keys = _keys(schema(), schema())
    assert "model.attention_options.e1_scale" in keys and "predict.checkpoint" in keys
    for key in keys:
        assert key in rows, f"{key} missing from config/README.md"
        assert rows[key], f"{key} has no description in the schema"
