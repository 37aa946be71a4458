"""The workflow keys prepared data by data set and preparation settings.

Two studies (config files) that differ only in a data set's ``size`` plan two
prepared folders, data/prepared/<dataset>/<key>/; the train, resolve and
aggregate jobs read the folder of their own study's key, and preparing the
second leaves the first in place.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from workflow_helpers import project_copy, snakemake

from jointseg import paths
from jointseg.config import load_config, preparation_key

DATASETS = ("demo_isic", "demo_msd")


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory) -> Path:
    """A project copy with config/big.yaml: the demo study with demo_isic at 128 x 128."""
    project = project_copy(tmp_path_factory.mktemp("prep"))
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config["datasets"]["demo_isic"]["size"] = [128, 128]
    (project / "config" / "big.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return project


def prepared(project: Path, config_file: str, dataset: str) -> str:
    """The prepared folder of ``dataset`` under ``config_file``, relative to the project."""
    entry = load_config(project / config_file)["datasets"][dataset]
    return str(paths.prepared_dir("data", dataset, preparation_key(entry)))


def jobs(output: str) -> list[dict]:
    """Rule, input files, wildcards and shell command of each job in a ``snakemake -n -p`` output."""
    found: list[dict] = []
    for line in output.splitlines():
        text = line.strip()
        if m := re.fullmatch(r"(?:local)?rule (\w+):", text):
            found.append({"rule": m.group(1), "input": [], "wildcards": {}, "shell": ""})
        elif found and text.startswith("input: "):
            found[-1]["input"] = text[len("input: ") :].split(", ")
        elif found and text.startswith("wildcards: "):
            found[-1]["wildcards"] = dict(kv.split("=", 1) for kv in text[len("wildcards: ") :].split(", "))
        elif found and text.startswith("Shell command: "):
            found[-1]["shell"] = text
    return found


def test_two_sizes_plan_two_prepared_folders(two_studies):
    small = jobs(snakemake(two_studies, "-n", "-p", timeout=300).stdout)
    big = jobs(snakemake(two_studies, "-n", "-p", "--configfile", "config/big.yaml", timeout=300).stdout)
    folders = {}
    for name, planned, config_file in (("small", small, "config/config.yaml"), ("big", big, "config/big.yaml")):
        want = {ds: prepared(two_studies, config_file, ds) for ds in DATASETS}
        prepares = {j["wildcards"]["dataset"]: j["wildcards"]["prep"] for j in planned if j["rule"] == "prepare"}
        assert {ds: str(paths.prepared_dir("data", ds, key)) for ds, key in prepares.items()} == want, name
        for job in planned:
            folder = want.get(job["wildcards"].get("dataset"))
            if job["rule"] == "train":  # its inputs are the keyed manifest and splits
                assert f"{folder}/manifest.json" in job["input"] and f"{folder}/splits.json" in job["input"]
            if job["rule"] == "resolve":  # the run config names the same folder
                assert f"--prepared {folder} " in job["shell"], job["shell"]
        (aggregate,) = [j for j in planned if j["rule"] == "aggregate"]
        assert {f"{want[ds]}/manifest.json" for ds in DATASETS} <= set(aggregate["input"])
        folders[name] = want
    assert folders["small"]["demo_isic"] != folders["big"]["demo_isic"]  # size differs
    assert folders["small"]["demo_msd"] == folders["big"]["demo_msd"]  # same settings: shared


@pytest.mark.slow  # downloads and prepares demo_isic twice (about a minute)
def test_preparing_another_size_keeps_the_first(two_studies):
    # (targets first: --configfile takes every word after it)
    manifests = {
        f: prepared(two_studies, f, "demo_isic") + "/manifest.json" for f in ("config/config.yaml", "config/big.yaml")
    }
    for config_file, manifest in manifests.items():
        snakemake(two_studies, manifest, "--cores", "1", "--configfile", config_file, timeout=600)
    sizes = {f: json.loads((two_studies / m).read_text())["preprocess"]["size"] for f, m in manifests.items()}
    assert sizes == {"config/config.yaml": [64, 64], "config/big.yaml": [128, 128]}
    # Back to the first study: its prepared data are still there and current.
    again = snakemake(two_studies, manifests["config/config.yaml"], "-n", "--configfile", "config/config.yaml")
    assert "Nothing to be done" in again.stdout, again.stdout
