"""docs/design.md, "How to extend": each checklist done with a toy entry, seen everywhere it must reach.

Each test registers one toy entry the way the checklist says (a line in the registry,
plus its function, class or file) and follows it into the config schema (its enum,
config/README.md), the command line's help, and the run or the report. Nothing else
is edited: what the toy entry reaches, it reaches through the registries.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from reporting_helpers import cli_args, fake_study
from torch import nn
from training_helpers import ROOT, THREADS, prepare_demo, run_train

from jointseg import config as config_module
from jointseg.architectures import ARCHITECTURES, Architecture
from jointseg.attention import BLOCKS, VARIANTS, build, has_attention_map
from jointseg.attention.reference import reference_forward
from jointseg.cli import build_parser
from jointseg.cli import main as cli_main
from jointseg.config import load_config, resolve_run, schema, validate_config
from jointseg.config_docs import render
from jointseg.data.cases import FormatAdapter, Layout, RawCase
from jointseg.data.formats import FORMATS
from jointseg.evaluation.evaluate import columns, write_metrics
from jointseg.evaluation.metrics import METRICS, Counts, Metric, case_metrics
from jointseg.models import build_model, count_parameters, model_kwargs
from jointseg.models.checkpoint import load_checkpoint, model_from_checkpoint
from jointseg.reporting.claims import claims
from jointseg.reporting.recipe import parameter_counts
from jointseg.tracking.results import parent_metrics

DATASET = {"format": "isic", "sources": [{"url": "x.zip"}]}
MANIFEST = {"in_channels": 3, "num_classes": 2}


@pytest.fixture
def register(monkeypatch):
    """``register(registry, name, entry)``: a toy entry for this test only (the schema is rebuilt)."""

    def clear() -> None:
        config_module.schema.cache_clear()
        config_module._default_filler.cache_clear()

    def add(registry: dict, name: str, entry) -> None:
        monkeypatch.setitem(registry, name, entry)
        clear()

    yield add
    monkeypatch.undo()
    clear()


def help_text(command: str) -> str:
    """``jointseg COMMAND --help`` as argparse prints it."""
    sub = next(a for a in build_parser(command)._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command].format_help()


def schema_enum(*path: str) -> list:
    node = schema()
    for key in path:
        node = node[key]
    return node["enum"]


# --------------------------------------------------------------------------- a term-set variant
def test_a_term_set_variant_is_one_line_of_variants(register):
    register(VARIANTS, "self_bias", {"terms": ("E1", "E4")})
    assert "self_bias" in schema_enum("properties", "variants", "items")
    assert "`self_bias`" in render() and "self_bias" in help_text("resolve")
    config = validate_config({"datasets": {"toy": DATASET}, "variants": ["none", "self_bias"]})
    run = resolve_run(config, "toy", "self_bias", 0)
    assert run["model"]["attention"] == "self_bias"

    block = build("self_bias", 8, (4, 5)).eval()  # the unified module, checked against the equations
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        x = torch.randn(2, 8, 4, 5, generator=torch.Generator().manual_seed(2))
        assert torch.allclose(block(x), reference_forward(block, x), atol=1e-4)
    # the report's parameter column counts it with the network the run builds
    plain = resolve_run(config, "toy", "none", 0)
    counts = parameter_counts({("toy", "self_bias", 0): run, ("toy", "none", 0): plain}, {"toy": MANIFEST})
    assert counts[("toy", "self_bias")] > counts[("toy", "none")]


# --------------------------------------------------------------------------- a new block
class ToyGate(nn.Module):
    """A per-channel sigmoid gate: no attention over positions."""

    has_attention_map = False
    branches: tuple[str, ...] = ()

    def __init__(self, channels: int, size: tuple[int, int], variant: str) -> None:
        super().__init__()
        self.variant, self.channels, self.size = variant, channels, size
        self.scale = nn.Parameter(torch.zeros(channels))

    @classmethod
    def from_options(cls, channels: int, size: tuple[int, int], variant: str, build, **options) -> ToyGate:
        return cls(channels, size, variant)

    def gates(self) -> list[nn.Parameter]:
        return []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.scale)[None, :, None, None]


def test_a_new_block_is_its_class_and_one_line_of_blocks(register):
    register(BLOCKS, "toy_gate", ToyGate)
    register(VARIANTS, "gate", {"block": "toy_gate"})
    assert "gate" in schema_enum("properties", "variants", "items") and "gate" in help_text("resolve")
    config = validate_config(
        {"datasets": {"toy": DATASET}, "variants": ["none", "gate"], "model": {"attention_level": 8}}
    )
    kwargs = model_kwargs(resolve_run(config, "toy", "gate", 0), MANIFEST)
    model = build_model(**{**kwargs, "input_size": (32, 32)})
    assert isinstance(model.attention, ToyGate) and model.attention.channels == model.attention_channels
    assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 2, 32, 32)
    none = build_model(**{**kwargs, "attention": "none", "input_size": (32, 32)})
    assert count_parameters(model) == count_parameters(none) + model.attention_channels
    assert not has_attention_map(model.attention)  # the report draws no map and measures none for it


# --------------------------------------------------------------------------- a data format
class ToyFormat(FormatAdapter):
    """``img/<id>.png`` (RGB) with ``mask/<id>.png`` (0 background, 128 spot)."""

    summary = "toy layout (img/<id>.png, mask/<id>.png in 0/128)"

    def find_layout(self, root, labels):
        cases = [RawCase(p.stem, p, root / "mask" / p.name) for p in sorted((root / "img").glob("*.png"))]
        return Layout(
            cases, labels or {"0": "background", "1": "spot"}, ["R", "G", "B"], ndim=2, label_values={"0": 0, "128": 1}
        )


def test_a_data_format_is_its_adapter_and_one_line_of_formats(register, tmp_path):
    register(FORMATS, "toy", ToyFormat)
    assert "toy" in schema_enum("$defs", "dataset", "properties", "format")
    assert "toy = toy layout" in render() and "toy" in help_text("prepare")
    assert validate_config({"datasets": {"t": {**DATASET, "format": "toy"}}})["datasets"]["t"]["format"] == "toy"
    rng = np.random.default_rng(0)
    for folder in ("img", "mask"):
        (tmp_path / "raw" / folder).mkdir(parents=True)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "raw" / "img" / f"t{i}.png")
        mask = np.zeros((20, 24), np.uint8)
        mask[5 : 10 + i, 4:12] = 128
        Image.fromarray(mask).save(tmp_path / "raw" / "mask" / f"t{i}.png")
    out = tmp_path / "prepared"
    assert (
        cli_main(["prepare", "--format", "toy", "--source", str(tmp_path / "raw"), "--out", str(out), "--size", "16"])
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["format"], manifest["ndim"], manifest["num_classes"], len(manifest["cases"])) == ("toy", 2, 2, 10)
    assert manifest["preprocess"]["label_values"] == {"0": 0, "128": 1}
    assert {v for c in manifest["cases"] for v in c["label_values"]} == {0, 1}


# --------------------------------------------------------------------------- a metric
def volume_ratio(c: Counts) -> float:
    """Predicted over reference size (1 when both are empty)."""
    return 1.0 if c.tp + c.fn == 0 and c.tp + c.fp == 0 else (c.tp + c.fp) / max(c.tp + c.fn, 1)


def test_a_metric_is_its_function_and_one_registry_entry(register, tmp_path):
    study = fake_study(tmp_path)  # metrics files of the evaluate stage, before the metric existed
    register(METRICS, "volume_ratio", Metric("Vol. ratio", volume_ratio, digits=2, headline=5))
    pred, ref = np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)
    pred[1:5, 1:4], ref[1:3, 1:4] = 1, 1  # 12 predicted pixels, 6 reference pixels
    assert case_metrics(pred, ref, [1])[0]["volume_ratio"] == 2.0
    assert "volume_ratio" in columns()

    for path in study["metrics"]:  # ... and as evaluate writes them now, with the new column
        frame = pd.read_csv(path, dtype={"case": str})
        write_metrics(frame.assign(volume_ratio=frame["dice"] * 2)[list(columns())], path)
    out = tmp_path / "summary"
    assert cli_main(cli_args(study, out, "--no-figures")) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert "volume_ratio" in summary.columns
    assert "volume_ratio" in set(pd.read_csv(out / "stats.csv")["metric"])
    assert "Vol. ratio" in (out / "summary.md").read_text() and "Vol. ratio" in (out / "summary.tex").read_text()
    assert cli_main(["headline-metrics", "--metrics", *map(str, study["metrics"]), "--out", str(out / "m.json")]) == 0
    assert "volume_ratio" in json.loads((out / "m.json").read_text())["toy2d"]["joint"]
    assert "toy2d/joint/test_volume_ratio_mean" in parent_metrics(out / "summary.csv", None)  # MLflow's parent


# --------------------------------------------------------------------------- a baseline
class ToyNet(nn.Module):
    """Two convolutions; no attention variant, any input size."""

    attention = None

    def __init__(self, preset="small", in_channels=3, num_classes=2, attention="none", input_size=(64, 64), **_):
        super().__init__()
        width = {"small": 4, "paper": 8}[preset]
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, num_classes, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_a_baseline_is_its_model_file_and_one_line_of_architectures(register, tmp_path):
    register(
        ARCHITECTURES, "toy_net", Architecture("test_extend:ToyNet", ("small", "paper"), "a toy", False, cited=True)
    )
    assert "toy_net" in schema_enum("properties", "baselines", "items") and "toy_net" in help_text("resolve")
    assert "toy_net = a toy" in render()
    assert "sota_toy_net" in claims()  # the claims table tests joint against a cited comparator

    data = prepare_demo(tmp_path, ("demo_isic",))
    overrides = {
        "data_dir": str(data),
        "baselines": ["toy_net"],
        "datasets": {"demo_isic": {"size": [32, 32]}},
        "train": {"iterations": 2, "batch_size": 2, "val_every": 2, "checkpoint_every": 2, "threads": THREADS},
    }
    config = load_config(ROOT / "config" / "config.yaml", overrides)
    run = resolve_run(config, "demo_isic", "toy_net", 0, prepared_dir=data / "prepared" / "demo_isic")
    assert (run["model"]["arch"], run["model"]["attention"]) == ("toy_net", "none")
    run_train(run, tmp_path / "run")
    model = model_from_checkpoint(load_checkpoint(tmp_path / "run" / "checkpoints" / "final.pt"))
    assert isinstance(model, ToyNet)
    counts = parameter_counts({("demo_isic", "toy_net", 0): run}, {"demo_isic": MANIFEST})
    assert counts[("demo_isic", "toy_net")] == count_parameters(model) == (3 * 9 + 1) * 4 + (4 + 1) * 2
