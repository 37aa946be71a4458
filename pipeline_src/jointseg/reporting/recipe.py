"""What each variant was trained with, and how many parameters it has, from the run configs.

Scores without the recipe behind them are not comparable across studies: the
report states loss, scheduler, learning rate, Adam betas, batch size,
iterations, augmentation and the checkpoint that was evaluated, and each
variant's parameter count next to its scores (attention blocks differ in size).
"""

from __future__ import annotations

import torch

from ..models import build_model, model_kwargs
from ..models import count_parameters as count
from .collect import RunKey

# The training keys the report states, with their column titles.
RECIPE_KEYS: tuple[tuple[str, str], ...] = (
    ("loss", "loss"),
    ("scheduler", "scheduler"),
    ("lr", "lr"),
    ("betas", "betas"),
    ("batch_size", "batch"),
    ("iterations", "iterations"),
)


def count_parameters(run_config: dict, manifest: dict) -> int:
    """Trainable parameters of the run's network, built on the ``meta`` device (no weights allocated).

    The network is built exactly as training builds it: ``build_model(**model_kwargs(run_config, manifest))``.
    """
    with torch.device("meta"):
        model = build_model(**model_kwargs(run_config, manifest))
    return int(count(model))


def parameter_counts(run_configs: dict[RunKey, dict], manifests: dict[str, dict]) -> dict[tuple[str, str], int]:
    """``{(dataset, variant): parameters}``, from each variant's first seed (seeds share the network)."""
    out: dict[tuple[str, str], int] = {}
    for ds, v, seed in sorted(run_configs):
        if (ds, v) not in out and ds in manifests:
            out[(ds, v)] = count_parameters(run_configs[(ds, v, seed)], manifests[ds])
    return out


def _augment_text(augment: object) -> str:
    """``off``, or ``on (key value, ...)`` with every setting the run used."""
    if not augment or (isinstance(augment, dict) and augment.get("enabled") is False):
        return "off"
    if not isinstance(augment, dict):
        return "on"
    settings = ", ".join(f"{k} {_value(v)}" for k, v in sorted(augment.items()) if k != "enabled")
    return f"on ({settings})" if settings else "on (defaults)"


def _value(v: object) -> str:
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_value(x) for x in v) + ")"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def recipe(run_config: dict, checkpoint: str) -> dict[str, str]:
    """The stated training recipe of one run, as display strings."""
    m, tr = run_config["model"], run_config["train"]
    row = {
        "network": f"{m.get('arch', '?')}/{m.get('preset', '?')}",
        "attention": f"{m.get('attention', '?')} @ {m.get('attention_level', '?')}",
        "input": "x".join(str(s) for s in run_config["size"]),
    }
    row.update({title: _value(tr[k]) if k in tr else "–" for k, title in RECIPE_KEYS})
    row["augmentation"] = _augment_text(tr.get("augment"))
    row["checkpoint"] = checkpoint
    return row


def recipe_markdown(
    run_configs: dict[RunKey, dict],
    n_params: dict[tuple[str, str], int],
    datasets: list[str],
    variants: list[str],
    checkpoint: str,
) -> str:
    """A Markdown section: the settings every run shares on one line, then a table of the ones that
    differ, one row per data set and variant (seeds share the recipe). Compact, so that it fits the
    Snakemake report's pane."""
    first = {}
    for key in sorted(run_configs, key=lambda k: k[2]):
        first.setdefault(key[:2], run_configs[key])
    runs = [(ds, v) for ds in datasets for v in variants if (ds, v) in first]
    rows = {run: recipe(first[run], checkpoint) for run in runs}
    titles = list(next(iter(rows.values()), {}))
    shared = [t for t in titles if len({r[t] for r in rows.values()}) == 1]
    varying = [t for t in titles if t not in shared]
    lines = [
        "## Training recipe",
        "",
        f"From each run's `run_config.json` (first seed of each variant); the evaluated checkpoint is "
        f"`{checkpoint}.pt`; parameters counted with the network built as in training.",
        "",
    ]
    if shared:
        first_row = next(iter(rows.values()))
        lines += ["Every run: " + "; ".join(f"{t} {first_row[t]}" for t in shared) + ".", ""]
    header = ["data set", "variant", "parameters", *varying]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for ds, v in runs:
        cells = [ds, v, f"{n_params[(ds, v)]:,}", *(rows[(ds, v)][t] for t in varying)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
