"""The paper study's own path, end to end on CPU: ``snakemake --configfile config/paper.yaml``.

Everything is ``config/paper.yaml``'s own (the ``paper`` DenseUNet preset,
256x256 ISIC inputs, the training recipe, full-size predictions) except what
a CPU run must shrink, passed as ``--config`` overrides:

* the data sets' ``sources``: the same archive names, fetched over http from a
  synthetic ISIC-sized mirror (tests/paper_mirror.py) on 127.0.0.1, stored
  under ``*_mirror`` names so no checksum pinned for the real archives applies;
* ``train.iterations`` / ``val_every`` / ``checkpoint_every``, ``seeds`` and
  the ``variants`` / ``baselines`` lists.

Snakemake merges nested ``--config`` dicts into the config file's, so
``datasets={isic2017: {sources: [...]}}`` replaces only that entry's sources.
The run is shared by every test of this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from http_server import serve_folder
from paper_mirror import Mirror, build_mirror
from PIL import Image
from workflow_helpers import project_copy, snakemake

SEEDS = [0]
VARIANTS = ["none", "joint"]  # joint on the paper preset is the point; none is its ablation
BASELINES = ["unet"]
QUICK_TRAIN = {"iterations": 2, "val_every": 2, "checkpoint_every": 2}


@dataclass
class PaperRun:
    """The finished paper-path run that every test of this module inspects."""

    project: Path
    results: Path  # the study's results folder (holds <dataset>/<run>/seed<k>/ and summary/)
    paper: dict  # config/paper.yaml as committed
    mirror: Mirror
    served: list[str]  # request paths the mirror answered
    seconds: float

    def dataset(self, fmt: str) -> str:
        names = [n for n, d in self.paper["datasets"].items() if d["format"] == fmt]
        assert len(names) == 1, f"config/paper.yaml should hold one {fmt} data set, has {names}"
        return names[0]

    def run_dirs(self, dataset: str) -> dict[str, Path]:
        return {run: self.results / dataset / run / f"seed{seed}" for run in VARIANTS + BASELINES for seed in SEEDS}

    def prepared(self, dataset: str) -> Path:
        """The data set's prepared folder: the one its runs' ``run_config.json`` names (keyed by its settings)."""
        run = next(iter(self.run_dirs(dataset).values()))
        return self.project / json.loads((run / "run_config.json").read_text())["prepared_dir"]

    def test_ids(self, dataset: str) -> list[str]:
        splits = json.loads((self.prepared(dataset) / "splits.json").read_text())
        return sorted(splits["test"])


def picked(actual: dict, like: dict) -> dict:
    """The entries of ``actual`` at the (nested) keys of ``like``; the schema fills in the others."""
    return {
        k: picked(actual[k], v) if isinstance(v, dict) and isinstance(actual.get(k), dict) else actual.get(k)
        for k, v in like.items()
    }


def mirror_sources(entry: dict, base_url: str) -> list[dict]:
    """``entry``'s sources pointed at the mirror: the same file names in the URL, local names ``*_mirror``."""
    out = []
    for src in entry["sources"]:
        file = src["url"].rstrip("/").rsplit("/", 1)[-1]
        stem, ext = file.rsplit(".", 1)
        out.append({**src, "url": f"{base_url}/{file}", "name": f"{stem}_mirror.{ext}"})
    return out


def overrides(paper: dict, base_url: str) -> list[str]:
    """The ``--config`` arguments: only sources, the training length, seeds and the run lists."""
    datasets = {name: {"sources": mirror_sources(entry, base_url)} for name, entry in paper["datasets"].items()}
    return [
        f"datasets={json.dumps(datasets)}",
        f"train={json.dumps(QUICK_TRAIN)}",
        f"seeds={json.dumps(SEEDS)}",
        f"variants={json.dumps(VARIANTS)}",
        f"baselines={json.dumps(BASELINES)}",
    ]


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory) -> Iterator[PaperRun]:
    """Build and serve the mirror, run the paper study on it (once per module)."""
    mirror = build_mirror(tmp_path_factory.mktemp("mirror"))
    project = project_copy(tmp_path_factory.mktemp("paper"))
    paper = yaml.safe_load((project / "config" / "paper.yaml").read_text())
    wanted = {s["url"].rsplit("/", 1)[-1] for d in paper["datasets"].values() for s in d["sources"]}
    assert wanted == {p.name for p in mirror.root.iterdir()}, "the mirror must hold what paper.yaml fetches"
    with serve_folder(mirror.root) as server:
        start = time.monotonic()
        snakemake(
            project,
            "--configfile",
            "config/paper.yaml",
            "--cores",
            "2",
            "--resources",
            "gpu=1",
            "--config",
            *overrides(paper, server.url),
            timeout=1200,
        )
        seconds = time.monotonic() - start
        served = list(server.served)
    print(f"\npaper path on CPU (snakemake wall time): {seconds:.0f} s")
    summaries = sorted((project / "results").rglob("summary/summary.csv"))
    assert len(summaries) == 1, summaries
    yield PaperRun(project, summaries[0].parent.parent, paper, mirror, served, seconds)
    # A paper-preset checkpoint (weights + Adam state) is ~0.8 GB; each run keeps
    # latest/best/final and MLflow copies best/final and the model (~12 GB in all).
    # Drop them; the logs and results stay for a look after a failure.
    for weights in [*project.rglob("*.pt"), *project.rglob("*.pth")]:
        weights.unlink()


@pytest.mark.slow
def test_every_archive_came_over_http(paper_run):
    assert sorted(paper_run.served) == sorted(f"/{p.name}" for p in paper_run.mirror.root.iterdir())
    for name in paper_run.paper["datasets"]:
        marker = json.loads((paper_run.project / "data" / "raw" / name / ".complete.json").read_text())
        assert {s["name"] for s in marker["sources"]} == {
            s["name"] for s in mirror_sources(paper_run.paper["datasets"][name], "x")
        }
        assert all(s["url"].startswith("http://127.0.0.1:") for s in marker["sources"])


@pytest.mark.slow
def test_paper_preset_trained_at_the_configured_size(paper_run):
    from jointseg.models import build_model
    from jointseg.models.checkpoint import load_checkpoint

    isic = paper_run.dataset("isic")
    assert paper_run.paper["datasets"][isic]["size"] == [256, 256]
    for name, entry in paper_run.paper["datasets"].items():
        for run, folder in paper_run.run_dirs(name).items():
            config = json.loads((folder / "run_config.json").read_text())
            assert config["model"]["preset"] == paper_run.paper["model"]["preset"] == "paper"
            assert config["size"] == entry["size"]
            # the recipe is paper.yaml's, but for the training length
            expected = {**paper_run.paper["train"], **QUICK_TRAIN}
            assert picked(config["train"], expected) == expected
            model = {**paper_run.paper["model"], **entry.get("model", {})}
            assert config["model"]["attention_level"] == model["attention_level"]
            history = pd.read_csv(folder / "history.csv")
            assert history["step"].max() == QUICK_TRAIN["iterations"]
            assert history["loss"].dropna().gt(0).all()
            kwargs = load_checkpoint(folder / "checkpoints" / "final.pt")["model_kwargs"]
            assert (kwargs["preset"], list(kwargs["input_size"])) == ("paper", entry["size"])
            assert kwargs["arch"] == (run if run in BASELINES else paper_run.paper["model"]["arch"])
            assert kwargs["attention"] == ("none" if run in BASELINES else run)
    # The weights really are the paper network's: same tensors as a fresh paper-preset build.
    ckpt = load_checkpoint(paper_run.run_dirs(isic)["joint"] / "checkpoints" / "final.pt")
    fresh = build_model(**{**ckpt["model_kwargs"], "input_size": (256, 256)}).state_dict()
    shapes = {k: tuple(v.shape) for k, v in ckpt["model"].items()}
    assert shapes == {k: tuple(v.shape) for k, v in fresh.items()}


@pytest.mark.slow
def test_isic_predictions_have_each_images_own_size(paper_run):
    isic = paper_run.dataset("isic")
    ids = paper_run.test_ids(isic)
    expected = paper_run.mirror.isic_sizes["test"]
    assert ids == sorted(expected)  # the official split: the test archive's cases
    raw = paper_run.project / "data" / "raw" / isic
    assert len({expected[c] for c in ids}) == len(ids)  # distinct sizes, portrait and landscape
    for run, folder in paper_run.run_dirs(isic).items():
        assert sorted(p.name for p in (folder / "predictions").glob("*.png")) == [f"{c}.png" for c in ids]
        for cid in ids:
            [jpeg] = raw.rglob(f"{cid}.jpg")
            with Image.open(jpeg) as src, Image.open(folder / "predictions" / f"{cid}.png") as pred:
                assert src.size == (expected[cid][1], expected[cid][0])
                assert pred.size == src.size, f"{run}/{cid}: prediction {pred.size}, image {src.size}"
                assert set(np.unique(np.asarray(pred)).tolist()) <= {0, 1}


@pytest.mark.slow
def test_msd_predictions_keep_the_reference_geometry(paper_run):
    import nibabel as nib

    msd = paper_run.dataset("msd")
    ids = paper_run.test_ids(msd)
    splits = json.loads((paper_run.prepared(msd) / "splits.json").read_text())
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == paper_run.mirror.msd_cases
    task = paper_run.project / "data" / "raw" / msd / "Task04_Hippocampus"
    for run, folder in paper_run.run_dirs(msd).items():
        written = sorted(p.name for p in (folder / "predictions").glob("*.nii.gz"))
        assert written == [f"{c}.nii.gz" for c in ids], run
        for cid in ids:
            ref = nib.load(task / "labelsTr" / f"{cid}.nii.gz")
            pred = nib.load(folder / "predictions" / f"{cid}.nii.gz")
            assert pred.shape == ref.shape, f"{run}/{cid}"
            np.testing.assert_allclose(pred.affine, ref.affine, atol=1e-5)
            np.testing.assert_allclose(pred.header.get_zooms(), ref.header.get_zooms(), atol=1e-6)
            assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2}


@pytest.mark.slow
def test_metrics_rows_for_every_test_case(paper_run):
    for name, entry in paper_run.paper["datasets"].items():
        classes = sorted(int(k) for k in entry["labels"] if int(k) != 0)
        ids = paper_run.test_ids(name)
        for run, folder in paper_run.run_dirs(name).items():
            metrics = pd.read_csv(folder / "metrics.csv", dtype={"case": str})
            pairs = sorted(zip(metrics["case"], metrics["class"].astype(int)))
            assert pairs == sorted((c, k) for c in ids for k in classes), f"{name}/{run}"
            assert metrics["dice"].between(0, 1).all(), f"{name}/{run}"
            keys = set(zip(metrics["dataset"], metrics["variant"], metrics["seed"]))
            assert keys == {(name, run, SEEDS[0])}, f"{name}/{run}"


@pytest.mark.slow
def test_summary_names_every_variant(paper_run):
    summary_dir = paper_run.results / "summary"
    runs = VARIANTS + BASELINES
    summary = pd.read_csv(summary_dir / "summary.csv")
    assert set(zip(summary["dataset"], summary["variant"])) == {
        (d, r) for d in paper_run.paper["datasets"] for r in runs
    }
    stats = pd.read_csv(summary_dir / "stats.csv")
    reference = paper_run.paper.get("reference_variant", "joint")  # the schema's default
    assert set(stats["variant"]) == set(runs)
    assert set(stats["reference"]) == {reference}
    for name in paper_run.paper["datasets"]:  # every other run is tested against the reference
        dice = stats[(stats["dataset"] == name) & (stats["metric"] == "dice")]
        compared = dice[dice["variant"] != reference]
        assert set(compared["variant"]) == set(runs) - {reference}
        assert compared["p_value"].between(0, 1).all(), compared
    report = (summary_dir / "report.md").read_text().splitlines()
    for name in paper_run.paper["datasets"]:
        for run in runs:  # the recipe table has a row per data set and run
            rows = [line for line in report if f"| {name} |" in line and f"| {run} |" in line]
            assert rows, f"no row for {name}/{run} in report.md"
