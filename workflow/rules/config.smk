# The study config: loaded, --config values retyped, validated against the schema
# (workflow/schemas/config.schema.yaml, the package's) before any job runs, and
# written as the effective config every command reads. A wrong key or type ends
# the run with one line naming the file, the key and the problem.
import sys
from pathlib import Path

import yaml
from snakemake.utils import update_config

from jointseg import paths
from jointseg.config import validate_config
from jointseg.io_utils import UserError, atomic_write_text

DEFAULT_CONFIG = "config/config.yaml"

# `configfile:` would always load config/config.yaml and *merge* a
# --configfile into it (the paper study would inherit the demo data sets), so
# the default file is loaded only when none is given on the command line.
if not workflow.overwrite_configfiles:
    workflow.configfile(DEFAULT_CONFIG)


def _typed(value):
    """Give --config values their YAML types.

    Snakemake parses nested --config values with YAML's BaseLoader, so in
    `--config train='{iterations: 20}'` the 20 arrives as the string "20"; the
    schema (rightly) refuses it. Scalars that read as numbers, booleans or null
    get those types back.
    """
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if not isinstance(value, str):
        return value
    if any(c.isdigit() for c in value):  # words such as nan or inf stay strings
        for parse in (int, float):
            try:
                return parse(value)
            except ValueError:
                pass
    return {"true": True, "false": False, "null": None, "~": None}.get(
        value.lower(), value
    )


# Only the command line's --config entries are retyped: `overwrite_config`
# also holds the --configfile contents, which YAML already typed (retyping
# them would turn `study: "2024"` into an int).
_CLI_CONFIG = dict(workflow.config_settings.config)
if _CLI_CONFIG:
    update_config(config, _typed(_CLI_CONFIG))

CONFIG_SOURCE = ", ".join(
    str(p) for p in (workflow.overwrite_configfiles or [DEFAULT_CONFIG])
)
if _CLI_CONFIG:
    CONFIG_SOURCE += " (+ --config overrides)"

try:
    _validated = validate_config(dict(config), source=CONFIG_SOURCE)
except UserError as exc:
    sys.exit(f"jointseg workflow: error: {exc}")
# Update in place: Snakemake and the report keep a reference to this dict.
config.clear()
config.update(_validated)

# `jointseg` commands take a config *file*; the one Snakemake uses may carry
# --config overrides, so the main process writes the validated, defaults-filled
# config here and every command reads it. It is deliberately no input of any rule:
# a change in one variant's settings must rerun only that variant (the resolve
# rule's params carry each run's own settings), and rewriting it never makes
# anything rerun.
EFFECTIVE_CONFIG = str(
    paths.pipeline_dir(paths.study_dir(config["results_dir"], config["study"]))
    / "config.yaml"
)


def _write_effective_config() -> None:
    text = (
        f"# Written by the Snakefile from {CONFIG_SOURCE}; do not edit (it is rewritten).\n"
        + yaml.safe_dump(config, sort_keys=True)
    )
    path = Path(EFFECTIVE_CONFIG)
    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)


if workflow.is_main_process:
    _write_effective_config()
