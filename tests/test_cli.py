"""The jointseg command line: every sub-command's --help, one vocabulary across commands."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from jointseg.cli import COMMANDS, build_parser

# The same thing has the same flag everywhere (outputs are --out, never --output/--results-dir).
FORBIDDEN = ("--output", "--results-dir", "--results", "--out-dir", "--outdir", "--cfg")


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser(name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _actions(child)
        elif not isinstance(action, argparse._HelpAction):
            yield action


def test_top_level_help_is_plain_text():
    done = subprocess.run([sys.executable, "-m", "jointseg", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "``" not in done.stdout and ":mod:" not in done.stdout
    for name in COMMANDS:
        assert name in done.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_help_works(name):
    done = subprocess.run(
        [sys.executable, "-m", "jointseg", name, "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: jointseg {name}")
    assert "``" not in done.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_and_the_shared_vocabulary(name):
    for action in _actions(_subparser(name)):
        visible = action.help is not argparse.SUPPRESS
        if visible:
            assert action.help, f"jointseg {name}: {action.option_strings or action.dest} has no help text"
            assert not set(action.option_strings) & set(FORBIDDEN), (name, action.option_strings)
        if action.choices and visible and not isinstance(action.choices, dict):
            # argparse lists choices in the usage line; they must be real values
            assert all(str(c) for c in action.choices)


def test_dataset_variant_seed_config_share_their_names():
    """Where a command takes these, it takes them under these exact flags."""
    seen: dict[str, set[str]] = {}
    for name in COMMANDS:
        for action in _actions(_subparser(name)):
            for flag in action.option_strings:
                seen.setdefault(action.dest, set()).add(flag)
    for dest, flag in (
        ("dataset", "--dataset"),
        ("variant", "--variant"),
        ("seed", "--seed"),
        ("config", "--config"),
        ("out", "--out"),
    ):
        flags = {f for f in seen.get(dest, set()) if f.startswith("--")}
        assert flags <= {flag}, f"{dest} is spelled {sorted(flags)}"


def test_every_command_module_has_the_cli_contract_and_the_command_name():
    """`jointseg X-Y` is jointseg.commands.X_Y, with add_arguments(parser) and main(args)."""
    for name, (module, help_text) in COMMANDS.items():
        assert module.__name__ == f"jointseg.commands.{name.replace('-', '_')}", name
        assert callable(module.add_arguments) and callable(module.main), name
        assert help_text.strip(), name


def test_the_command_line_imports_no_torch_pandas_or_mlflow():
    """`jointseg --help` and every parser stay light: the stages are imported when a command runs."""
    code = (
        "import sys\n"
        "from jointseg.cli import COMMANDS, build_parser\n"
        "for name in COMMANDS: build_parser(name)\n"
        "print(sorted(m for m in ('torch', 'pandas', 'mlflow', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
