"""environment.yml (for conda users; conda cannot run here) must pin exactly what pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line.strip())
        assert m, f"not an exact pin: {line!r}"
        pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return _pins(project["dependencies"] + project["optional-dependencies"]["test"])


def _conda_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return _pins([p for p in pip_block if not p.startswith("-e")])


def test_environment_yml_pins_equal_pyproject():
    assert _conda_pins() == _pyproject_pins()


def test_environment_python_matches_requires_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=3.11"


def test_installed_versions_match_pins():
    """The environment the tests run in is the pinned one (catches a stale venv)."""
    for name, version in _pyproject_pins().items():
        installed = metadata.version(name).split("+")[0]
        assert installed == version, f"{name}: installed {installed}, pinned {version}"


def test_rule_environment_pins_equal_environment_yml():
    """workflow/envs/jointseg.yaml (every rule's `conda:`) carries environment.yml's pins."""
    rules_env = yaml.safe_load((ROOT / "workflow" / "envs" / "jointseg.yaml").read_text())
    pip_block = next(d["pip"] for d in rules_env["dependencies"] if isinstance(d, dict))
    assert _pins([p for p in pip_block if not p.startswith("-e")]) == _conda_pins()
    assert "-e ../.." in pip_block  # the checkout, seen from workflow/envs/
    for rule_file in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = rule_file.read_text()
        assert text.count("    shell:") == text.count('conda:\n        "../envs/jointseg.yaml"'), rule_file.name
