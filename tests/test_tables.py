"""Markdown and LaTeX tables of a fake study: cells, raw and Holm p, parameter counts."""

from __future__ import annotations

import pytest
from reporting_helpers import DIFF, JOINT, cli_args, fake_study

from jointseg.cli import main as cli_main
from jointseg.models import build_model
from jointseg.reporting.tables import format_p


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
    line = next(ln for ln in md.splitlines() if ln.startswith("| pointwise") and "±" in ln)
    mean, std = (JOINT - DIFF).mean(), (JOINT - DIFF).std(ddof=1)
    assert f"| {mean:.3f} ± {std:.3f} [" in line
    # Wilcoxon p = 10/64 = 0.156; Holm over {pointwise, self}: 2 * 10/64 = 0.3125
    assert "| 0.156 (0.312) |" in line
    assert f"| {unet_parameters('pointwise'):,} |" in line
    assert line.rstrip().endswith("| 6 | 3 |")  # n cases, one-empty case x seed
    ref = next(ln for ln in md.splitlines() if ln.startswith("| **joint** (ref)"))
    assert f"| {unet_parameters('joint'):,} |" in ref and "| ref |" in ref


def test_markdown_distance_policy_table_for_a_pixel_data_set(tables):
    md, _ = tables
    header = next(ln for ln in md.splitlines() if "HD95 penalised" in ln)
    assert "ASSD penalised" in header and "HD95 % diag." in header and "ASSD % diag." in header
    # penalised HD95 of pointwise: per case [100, (150 + 4)/2, 5, 6, 7, 8] -> mean 33.83
    rows = [ln for ln in md.splitlines() if ln.startswith("| pointwise")]
    assert len(rows) == 2 and "| 33.83 ± " in rows[1]


def test_markdown_states_the_training_recipe(tables):
    md, _ = tables
    recipe = md.split("## Training recipe", 1)[1].split("## toy2d", 1)[0]
    rows = {ln.split(" | ")[1]: ln for ln in recipe.splitlines() if ln.startswith("| toy2d")}
    assert set(rows) == {"pointwise", "self", "joint"}
    assert "| ce | constant | 0.0005 | (0.9, 0.99) | 4 | 100 |" in rows["joint"]
    assert "| on (" in rows["joint"] and "rotate 15" in rows["joint"] and rows["joint"].endswith("| final |")
    assert "| off |" in rows["self"]  # variant_overrides switched augmentation off for `self`
    assert f"| {unet_parameters('self'):,} |" in rows["self"]


def test_latex_tables(tables):
    _, tex = tables
    assert tex.count("\\begin{table}") == 2 and tex.count("\\end{tabular}") == 2
    assert "\\textbf{joint}" in tex and "\\pm" in tex and "0.156 (0.312)" in tex
    assert "HD95 penalised" in tex and "HD95 \\% diag." in tex
    assert f"{unet_parameters('self'):,}".replace(",", "{,}") in tex
