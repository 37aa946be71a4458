"""``jointseg config-docs``: config/README.md, every config key described, generated from the schema.

The schema is the one place that holds keys, types, defaults and descriptions (its
registry-backed enums filled from the registries, :func:`jointseg.config.schema`);
this renders it as Markdown tables (one per object) so the documentation cannot
drift from what validation accepts. ``tests/test_config_docs.py`` checks that
the committed file equals the generated one.
"""

from __future__ import annotations

import json

from .config import schema

HEADER = """# Study configuration keys

Generated from `pipeline_src/jointseg/schemas/config.schema.yaml` and the registries its
enums come from (`jointseg.variants`, `jointseg.architectures`, `jointseg.data.formats`) by
`jointseg config-docs --out config/README.md`; do not edit by hand.

A study is one YAML file (`config/config.yaml`, the demo, is the default;
`config/paper.yaml` is the paper study; `config/recipe_ours.yaml` is an overlay
with our improved training recipe). Snakemake validates it against the schema
before any job runs and fills in the defaults below. `--config key=value`
overrides single keys.

Bring your own data set in nnU-Net v2 raw format with three lines per data set:

```yaml
datasets:
  my_task:
    format: nnunet
    sources: [{url: /path/to/Dataset001_MyTask}]   # read in place, hashed like a download
    labels: {"0": background, "1": tumor}          # as in its dataset.json
```
"""


def _resolve(node: dict, root: dict) -> dict:
    ref = node.get("$ref")
    if not ref:
        return node
    target = root
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    # draft 2020-12: keywords beside $ref (a description) apply too
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _type(node: dict) -> str:
    if "enum" in node:
        return " | ".join(f"`{v}`" for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(_type(n) for n in node["oneOf"])
    kind = node.get("type", "object")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(kinds)
    if "array" in kinds and "items" in node:
        text += f" of {_type(node['items'])}"
    return text


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _rows(node: dict, root: dict, prefix: str, tables: list[tuple[str, dict]]) -> list[str]:
    rows = []
    for key, sub in node.get("properties", {}).items():
        sub = _resolve(sub, root)
        name = f"{prefix}{key}"
        default = (
            f"`{json.dumps(sub['default'])}`"
            if "default" in sub
            else "required"
            if key in node.get("required", [])
            else "-"
        )
        rows.append(f"| `{name}` | {_cell(_type(sub))} | {_cell(default)} | {_cell(sub.get('description', ''))} |")
        if sub.get("properties"):
            tables.append((name, sub))
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict) and _resolve(extra, root).get("properties"):
            tables.append((f"{name}.<name>", _resolve(extra, root)))
    return rows


def render(root: dict | None = None) -> str:
    """The Markdown text of config/README.md."""
    root = root or schema()
    out = [HEADER]
    tables: list[tuple[str, dict]] = [("", root)]
    while tables:
        name, node = tables.pop(0)
        out.append(f"\n## `{name}`\n" if name else "\n## Top level\n")
        if node.get("description") and name:
            out.append(_cell(node["description"]) + "\n")
        out.append("| key | type | default | meaning |\n|---|---|---|---|")
        out.extend(_rows(node, root, f"{name}." if name else "", tables))
    return "\n".join(out) + "\n"
