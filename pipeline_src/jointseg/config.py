"""Study configuration: load, validate against the schema, fill defaults, resolve runs.

Config is data: one YAML file, one JSON schema (``schemas/config.schema.yaml``,
also seen by Snakemake as ``workflow/schemas/config.schema.yaml``) holding the
defaults. Code receives the resolved dict; nothing reads globals.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import paths
from .io_utils import UserError

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"
BASELINE_ARCHS = ("unet",)


@lru_cache(maxsize=1)
def schema() -> dict:
    """The parsed JSON schema."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` updated recursively with ``override`` (neither is modified)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_ref(node: dict, root: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = root
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    return target


def _fill_defaults(instance: Any, node: dict, root: dict) -> Any:
    """Fill schema defaults into ``instance`` recursively (objects only)."""
    node = _resolve_ref(node, root)
    if not isinstance(instance, dict) or node.get("type") != "object":
        return instance
    for key, sub in node.get("properties", {}).items():
        sub_r = _resolve_ref(sub, root)
        if key not in instance and "default" in sub_r:
            instance[key] = copy.deepcopy(sub_r["default"])
        if key in instance:
            instance[key] = _fill_defaults(instance[key], sub_r, root)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        for key in instance:
            if key not in node.get("properties", {}):
                instance[key] = _fill_defaults(instance[key], extra, root)
    return instance


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate ``config`` against the schema and return a copy with defaults filled.

    Raises :class:`UserError` with one line naming the file, the key and the problem.
    """
    root = schema()
    validator = jsonschema.Draft202012Validator(root)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        raise UserError(f"{source}: invalid value at '{_where(err)}': {err.message}")
    filled = _fill_defaults(copy.deepcopy(config), root, root)
    for variant in filled["variants"]:
        _check_variant(variant, source)
    return filled


def _check_variant(variant: str, source: str) -> None:
    from .variants import VARIANTS

    if variant not in VARIANTS:
        raise UserError(f"{source}: unknown variant '{variant}' in 'variants'; choose from {sorted(VARIANTS)}")


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    """Read a YAML study config, apply ``overrides`` (deep-merged), validate, fill defaults."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if overrides:
        config = deep_merge(config, overrides)
    return validate_config(config, source=str(path))


def run_names(config: dict) -> list[str]:
    """Names of everything trained per data set and seed: the variants, then the baselines."""
    return list(config["variants"]) + list(config["baselines"])


def resolve_run(config: dict, dataset: str, variant: str, seed: int) -> dict:
    """The complete, self-contained settings of one training run.

    ``variant`` is an attention variant (trained in ``model.arch``) or a baseline
    architecture name. Precedence: global ``model``/``train`` < the data set's
    ``model``/``train`` < ``variant_overrides[variant]``.
    """
    if dataset not in config["datasets"]:
        raise UserError(f"unknown data set '{dataset}'; configured: {sorted(config['datasets'])}")
    ds = config["datasets"][dataset]
    model = deep_merge(config["model"], ds.get("model", {}))
    train = deep_merge(config["train"], ds.get("train", {}))
    if variant in BASELINE_ARCHS:
        model["arch"], attention = variant, "none"
    else:
        attention = variant
    override = config["variant_overrides"].get(variant, {})
    model = deep_merge(model, override.get("model", {}))
    train = deep_merge(train, override.get("train", {}))
    return {
        "study": config["study"],
        "dataset": dataset,
        "variant": variant,
        "seed": int(seed),
        "deterministic": config["deterministic"],
        "prepared_dir": str(paths.prepared_dir(config["data_dir"], dataset)),
        "size": list(ds["size"]),
        "labels": dict(ds["labels"] or {}),  # empty: the prepared manifest names the classes
        "model": {**model, "attention": attention},
        "train": train,
        "mlflow": dict(config["mlflow"]),
    }


def load_dataset_entry(path: str | Path, dataset: str) -> tuple[dict, dict]:
    """Load the study config at ``path`` and return ``(config, config["datasets"][dataset])``.

    Raises :class:`UserError` naming the config file when the data set is not configured.
    """
    config = load_config(path)
    if dataset not in config["datasets"]:
        raise UserError(f"{path}: unknown data set '{dataset}'; configured: {sorted(config['datasets'])}")
    return config, config["datasets"][dataset]
