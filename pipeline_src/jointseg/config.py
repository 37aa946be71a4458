"""Study configuration: load, validate against the schema, fill defaults, resolve runs.

Config is data: one YAML file, one JSON schema (``schemas/config.schema.yaml``,
also seen by Snakemake as ``workflow/schemas/config.schema.yaml``) holding the
defaults. Code receives the resolved dict; nothing reads globals.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .architectures import ARCHITECTURES, baselines, presets
from .data.formats import FORMATS
from .io_utils import UserError
from .variants import VARIANTS

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"
REGISTRY_KEY = "x-registry"  # a schema node naming the registry its enum comes from


def registry_choices() -> dict[str, dict[str, str]]:
    """The registries the schema's enums come from: ``{registry: {name: one-line summary}}``."""
    return {
        "variants": dict.fromkeys(VARIANTS, ""),
        "architectures": {name: a.summary for name, a in ARCHITECTURES.items()},
        "baselines": {name: ARCHITECTURES[name].summary for name in baselines()},
        "presets": {p: ", ".join(n for n, a in ARCHITECTURES.items() if p in a.presets) for p in presets()},
        "formats": {name: adapter.summary for name, adapter in FORMATS.items()},
    }


def _fill_registries(node: object, choices: dict[str, dict[str, str]]) -> None:
    """Give every node marked ``x-registry: NAME`` the enum of that registry and a line per entry."""
    if isinstance(node, list):
        for item in node:
            _fill_registries(item, choices)
    if not isinstance(node, dict):
        return
    if REGISTRY_KEY in node:
        entries = choices[node[REGISTRY_KEY]]
        node["enum"] = list(entries)
        described = "; ".join(f"{name} = {text}" for name, text in entries.items() if text)
        if described:
            node["description"] = f"{node.get('description', '').strip()} {described}.".strip()
    for value in node.values():
        _fill_registries(value, choices)


@lru_cache(maxsize=1)
def schema() -> dict:
    """The parsed JSON schema, its registry-backed enums filled in (:func:`registry_choices`)."""
    root = yaml.safe_load(SCHEMA_PATH.read_text())
    _fill_registries(root, registry_choices())
    return root


def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` updated recursively with ``override`` (neither is modified)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# Subschemas the default filler does not enter: the jsonschema recipe would apply
# the defaults of a failing oneOf/anyOf/if/not branch. Array items (each data set's
# ``sources``) are filled like everything else, so no code repeats their defaults.
_NOT_FILLED = ("oneOf", "anyOf", "if", "not", "dependentSchemas", "prefixItems", "contains")
_SCHEMA_URI = "urn:jointseg:config-schema"


@lru_cache(maxsize=1)
def _default_filler():
    """A validator that fills defaults while it walks (the jsonschema FAQ's ``extend`` recipe).

    Each ``properties`` keyword first sets the missing keys' defaults (deep
    copies; a ``$ref``'d subschema's default is looked up, the recipe alone
    misses it), then checks the properties as usual, descending into them and,
    through ``additionalProperties`` and ``$ref``, into every data set entry.
    """
    import jsonschema  # lazy (with referencing: 0.1 s): the command line's help never validates
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    base = jsonschema.Draft202012Validator
    root = schema()
    resource = DRAFT202012.create_resource(root)
    refs = Registry().with_resource(_SCHEMA_URI, resource).resolver(_SCHEMA_URI)
    check_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties: dict, instance: Any, node: dict):
        if validator.is_type(instance, "object"):
            for key, sub in properties.items():
                if "default" not in sub and "$ref" in sub:
                    sub = refs.lookup(sub["$ref"]).contents
                if key not in instance and "default" in sub:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, properties, instance, node)

    skip = dict.fromkeys(_NOT_FILLED, lambda *_: ())
    return jsonschema.validators.extend(base, {**skip, "properties": set_defaults})(root)


def _where(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate ``config`` against the schema and return a copy with defaults filled.

    Raises :class:`UserError` with one line naming the file, the key and the problem.
    """
    import jsonschema  # lazy: see _default_filler

    root = schema()
    validator = jsonschema.Draft202012Validator(root)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        raise UserError(f"{source}: invalid value at '{_where(err)}': {err.message}")
    filled = copy.deepcopy(config)
    for error in _default_filler().iter_errors(filled):  # filled in place; valid input, valid defaults
        raise RuntimeError(f"schema default invalid at '{_where(error)}': {error.message}")
    _check_networks(filled, source)
    _check_gpus_per_job(filled["gpus_per_job"], source)
    return filled


def _check_networks(config: dict, source: str) -> None:
    """What the schema's enums cannot say: presets per network, attention only where a network takes it."""
    model = config["model"]
    arch = ARCHITECTURES[model["arch"]]
    with_attention = [v for v in config["variants"] if v != "none"]
    if with_attention and not arch.attention:
        raise UserError(
            f"{source}: invalid value at 'model.arch': {model['arch']} takes no attention variant, but 'variants' "
            f"lists {with_attention}; train it under 'baselines' instead"
        )
    for name in [model["arch"], *config["baselines"]]:
        if model["preset"] not in ARCHITECTURES[name].presets:
            raise UserError(
                f"{source}: invalid value at 'model.preset': {name} has no preset '{model['preset']}'; "
                f"it has {list(ARCHITECTURES[name].presets)}"
            )


def _check_gpus_per_job(count: int | None, source: str) -> None:
    if count is not None and count > 1:  # a job would hold devices it never uses
        raise UserError(
            f"{source}: invalid value at 'gpus_per_job': {count}; training and inference use one GPU "
            "(multi-GPU training is not implemented): set 1, 0 or null"
        )


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


# Data set keys that only training reads: changing them must not re-prepare the data.
_NOT_PREPARATION = ("model", "train", "description")


def preparation_key(entry: dict) -> str:
    """Short hash of the data set entry's preprocessing settings (``size``, ``split``, ``labels``, ...).

    Every key of the (schema-filled) ``datasets.<name>`` entry except ``model``,
    ``train`` and ``description`` counts, so two studies preparing the same data
    set differently get different ``<data_dir>/prepared/<dataset>/<key>`` folders.
    """
    settings = {k: v for k, v in entry.items() if k not in _NOT_PREPARATION}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def resolve_run(config: dict, dataset: str, variant: str, seed: int, prepared_dir: str | Path | None = None) -> dict:
    """The complete, self-contained settings of one training run.

    ``variant`` is an attention variant (trained in ``model.arch``) or a baseline
    architecture name. Precedence: global ``model``/``train`` < the data set's
    ``model``/``train`` < ``variant_overrides[variant]``. ``prepared_dir`` is the
    data set's prepared folder (the workflow passes its rule's); ``None``: the
    keyed folder under ``data_dir`` (:func:`preparation_key`).
    """
    if dataset not in config["datasets"]:
        raise UserError(f"unknown data set '{dataset}'; configured: {sorted(config['datasets'])}")
    ds = config["datasets"][dataset]
    if prepared_dir is None:
        prepared_dir = paths.prepared_dir(config["data_dir"], dataset, preparation_key(ds))
    model = deep_merge(config["model"], ds.get("model", {}))
    train = deep_merge(config["train"], ds.get("train", {}))
    if variant in ARCHITECTURES:  # a baseline: the network itself, without attention
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
        "prepared_dir": str(prepared_dir),
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
