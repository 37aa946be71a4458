"""Markdown and LaTeX tables of a fake study: cells, raw and Holm p, parameter counts."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from reporting_helpers import DIFF, JOINT, cli_args, fake_study

from jointseg.cli import main as cli_main
from jointseg.models import build_model
from jointseg.reporting.tables import format_p, latex_tables


def unet_parameters(attention: str) -> int:
    """Parameters of the fake study's network, built with real weights and counted by hand."""
    model = build_model(
        arch="unet",
        preset="small",
        in_channels=3,
        num_classes=2,
        attention=attention,
        attention_level=8,
        input_size=(64, 64),
    )
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def cells(line: str) -> list[str]:
    """The cells of a Markdown pipe-table row (tabulate pads them to the column width)."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def rows_of(md: str, variant: str) -> list[list[str]]:
    """Cells of every table row of ``variant`` (first cell), in order."""
    return [cells(ln) for ln in md.splitlines() if ln.startswith("|") and cells(ln)[0] == variant]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    out = root / "summary"
    assert cli_main(cli_args(fake_study(root), out, "--no-figures")) == 0
    return (out / "summary.md").read_text(), (out / "summary.tex").read_text()


def test_format_p():
    assert format_p(0.0004) == "<0.001"
    assert format_p(0.0314) == "0.031"
    assert format_p(float("nan")) == "–"


def test_markdown_score_row_has_cells_raw_and_holm_p_and_parameters(tables):
    md, _ = tables
    assert "## toy2d: class 1 (lesion)" in md and "2 seed(s); distances in px." in md
    header = cells(next(ln for ln in md.splitlines() if ln.startswith("| variant") and "Dice" in ln))
    assert header[:4] == ["variant", "parameters", "Dice", "p (Holm)"] and header[-2:] == ["n", "NaN dist."]
    row = rows_of(md, "pointwise")[0]  # the scores table
    mean, std = (JOINT - DIFF).mean(), (JOINT - DIFF).std(ddof=1)
    assert row[2].startswith(f"{mean:.3f} ± {std:.3f} [")
    # Wilcoxon p = 10/64 = 0.156; Holm over {pointwise, self}: 2 * 10/64 = 0.3125
    assert row[3] == "0.156 (0.312)"
    assert row[1] == f"{unet_parameters('pointwise'):,}"
    assert row[-2:] == ["6", "3"]  # n cases, one-empty case x seed
    ref = rows_of(md, "**joint** (ref)")[0]
    assert ref[1] == f"{unet_parameters('joint'):,}" and ref[3] == "ref"
    align = cells(next(ln for ln in md.splitlines() if ln.startswith("|:")))
    assert align[0].startswith(":") and all(a.endswith(":") for a in align[1:])  # numbers right-aligned


def test_markdown_distance_policy_tables_for_a_pixel_data_set(tables):
    """Two metrics per table (narrow enough for the report's pane): penalised, then % of the diagonal."""
    md, _ = tables
    penalised = cells(next(ln for ln in md.splitlines() if "HD95 penalised" in ln))
    percent = cells(next(ln for ln in md.splitlines() if "HD95 % diag." in ln))
    assert penalised[2::2][:2] == ["HD95 penalised", "ASSD penalised"]
    assert percent[2::2][:2] == ["HD95 % diag.", "ASSD % diag."]
    heads = [cells(ln) for ln in md.splitlines() if ln.startswith("| variant")]
    assert all(len(h) == 2 + 2 * 2 + 2 for h in heads)  # variant, parameters, 2 x (value, p), n, NaN dist.
    # penalised HD95 of pointwise: per case [100, (150 + 4)/2, 5, 6, 7, 8] -> mean 33.83
    rows = rows_of(md, "pointwise")  # overlap, distances, penalised, % diag.
    assert len(rows) == 4 and rows[2][2].startswith("33.83 ± ")


def test_markdown_states_the_training_recipe(tables):
    """What every run shares on one line; a table of what differs (here: augmentation of `self`)."""
    md, _ = tables
    recipe = md.split("## Training recipe", 1)[1].split("## toy2d", 1)[0]
    shared = next(ln for ln in recipe.splitlines() if ln.startswith("Every run: "))
    for setting in ("loss ce", "scheduler constant", "lr 0.0005", "betas (0.9, 0.99)", "batch 4", "iterations 100"):
        assert setting in shared, setting
    assert "checkpoint final" in shared
    rows = {ln.split(" | ")[1]: ln for ln in recipe.splitlines() if ln.startswith("| toy2d")}
    assert set(rows) == {"pointwise", "self", "joint"}
    assert "| on (" in rows["joint"] and "rotate 15" in rows["joint"]
    assert rows["self"].endswith("| off |")  # variant_overrides switched augmentation off for `self`
    assert f"| {unet_parameters('self'):,} |" in rows["self"]
    assert "| loss |" not in recipe  # shared settings are not repeated per row


def test_latex_tables(tables):
    _, tex = tables
    assert tex.count("\\begin{table}") == 2 and tex.count("\\end{tabular}") == 2
    assert "\\textbf{joint}" in tex and "\\pm" in tex and "0.156 (0.312)" in tex
    assert "HD95 penalised" in tex and "HD95 \\% diag." in tex
    assert f"{unet_parameters('self'):,}".replace(",", "{,}") in tex


def test_latex_escapes_free_text_and_keeps_the_math():
    """Names with LaTeX specials (``_``, ``%``, ``&``) come out escaped; cells keep ``$\\pm$`` and ``$<$``."""
    rows = [
        {
            "dataset": "ds_1",
            "class": 1,
            "variant": v,
            "metric": m,
            "mean": 0.5,
            "std": 0.1,
            "ci_low": 0.4,
            "ci_high": 0.6,
            "p_value": 0.0004 if v == "self" else np.nan,
            "p_holm": 0.0008 if v == "self" else np.nan,
            "n_cases": 3,
            "n_nan_case_seed": 0,
        }
        for v in ("joint_sum", "self")
        for m in ("dice", "iou", "hd95", "assd", "hd95_penalised", "assd_penalised")
    ]
    names = {"ds_1": {1: "50% core & rim"}}
    params = {("ds_1", "joint_sum"): 1234, ("ds_1", "self"): 99}
    tex = latex_tables(pd.DataFrame(rows), ["ds_1"], ["joint_sum", "self"], "joint_sum", names, {"ds_1": "mm"}, params)
    assert "\\caption{ds\\_1, class 1 (50\\% core \\& rim), scores:" in tex and "test of joint\\_sum vs." in tex
    body = tex.split("\\midrule", 1)[1].split("\\bottomrule", 1)[0].splitlines()[1:]
    assert body[0].split(" & ")[:4] == ["\\textbf{joint\\_sum}", "1{,}234", "$0.500 \\pm 0.100$ [0.400, 0.600]", "ref"]
    assert body[1].split(" & ")[:4] == ["self", "99", "$0.500 \\pm 0.100$ [0.400, 0.600]", "$<$0.001 ($<$0.001)"]
    assert not re.search(r"(?<!\\)[_%&#]", "".join(body).replace(" & ", "")), "unescaped LaTeX special in a row"
    assert "±" not in tex and "–" not in tex  # no bare Unicode signs for pdflatex
