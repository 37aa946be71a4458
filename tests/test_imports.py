"""Imports run one way between the stages, as the data does (docs/design.md, "Package layout").

Every module of the package is parsed (``ast``, nothing is imported) and each of its
``import`` / ``from ... import`` statements, at module level or inside a function, is
resolved to the ``jointseg`` package it reaches:

- ``models/`` and ``attention/`` import no stage;
- ``training/`` imports neither ``inference/`` nor ``reporting/``;
- ``inference/`` imports neither ``training/`` nor ``reporting/``;
- ``reporting/`` imports no ``training/``;
- nothing but the entry point (``cli.py``) imports ``commands/``, the top layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline_src" / "jointseg"
STAGES = frozenset({"data", "training", "inference", "evaluation", "reporting", "tracking"})
FORBIDDEN: dict[str, frozenset[str]] = {
    "models": STAGES,
    "attention": STAGES,
    "training": frozenset({"inference", "reporting"}),
    "inference": frozenset({"training", "reporting"}),
    "reporting": frozenset({"training"}),
}


def module_name(path: Path, root: Path = PACKAGE) -> tuple[str, bool]:
    """``(dotted name, is a package __init__)`` of a file under the package folder ``root``."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import statement in ``path`` (relative ones resolved)."""
    name, is_package = module_name(path, root)
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module or ""))
                continue
            base = here[: len(here) - (node.level - 1)]
            if node.module:
                found.append((node.lineno, ".".join([*base, node.module])))
            else:  # from . import x, y: each name may be a module
                found += [(node.lineno, ".".join([*base, alias.name])) for alias in node.names]
    return sorted(found)


def stage_of(module: str) -> str | None:
    """The top-level package of ``jointseg`` that ``module`` is in (None outside jointseg)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "jointseg" and len(parts) > 1 else None


def violations(root: Path = PACKAGE) -> list[str]:
    """``file:line imports module`` for every import against the stage order."""
    out = []
    for path in sorted(root.rglob("*.py")):
        own = stage_of(module_name(path, root)[0])
        for line, target in imported_modules(path, root):
            reached = stage_of(target)
            if reached in FORBIDDEN.get(own, ()) or (reached == "commands" and own not in ("commands", "cli")):
                out.append(f"{path.relative_to(root.parent)}:{line} imports {target}")
    return out


def test_the_parser_sees_relative_and_function_level_imports(tmp_path):
    """The check itself can fail: a training module that reaches inference, at any depth, is caught."""
    pkg = tmp_path / "jointseg" / "training"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text(
        "from ..models import build_model\n"
        "def f():\n"
        "    from ..inference.predict import predict_files\n"
        "    import jointseg.reporting.tables\n"
        "from jointseg.commands import train\n"
    )
    assert violations(tmp_path / "jointseg") == [
        "jointseg/training/bad.py:3 imports jointseg.inference.predict",
        "jointseg/training/bad.py:4 imports jointseg.reporting.tables",
        "jointseg/training/bad.py:5 imports jointseg.commands",
    ]


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_stage_imports_run_one_way(stage):
    assert (PACKAGE / stage).is_dir()
    found = [v for v in violations() if v.startswith(f"jointseg/{stage}/")]
    assert not found, "imports against the stage order:\n" + "\n".join(found)


def test_only_the_entry_point_imports_the_commands():
    found = [v for v in violations() if "imports jointseg.commands" in v]
    assert not found, "\n".join(found)
