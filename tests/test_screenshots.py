"""What a person sees, in headless Chromium: the Snakemake report and the `dvc plots show` page.

Chromium comes from Debian (ci/chromium/install_chromium.sh installs it as root, as
`make test` runs in CI); where it cannot be installed (not root, no apt-get) the tests
skip and say why. The report is the demo's (the session's quick demo run); the plots
page is DVC's own rendering of plot tables, opened with every host lookup failing, so
a page that needed the network would stay blank.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from browser_helpers import MEASURE_TABLES, body_attribute, chromium, clicks, colour, find_or_install, ink, with_script
from reporting_helpers import PLOT_VARIANTS, demo_plot_tables
from workflow_helpers import VENV_BIN, project_copy, run, snakemake

SUMMARY_LABEL = "summary: mean ± std [95% CI], p (Holm), recipe"
PANE = (450, 60, 1280, 900)  # the report's content pane at a 1280 x 1000 window (the sidebar is left)
PANE_WIDTH = 1161  # the width the pane had in the report (a 1440-px window)


@pytest.fixture(scope="module")
def browser() -> str:
    path, why = find_or_install()
    if path is None:
        pytest.skip(f"Chromium is not installed and cannot be here: {why}")
    return path


@pytest.fixture(scope="module")
def report(demo) -> Path:
    snakemake(demo, "--report", "screens_report.html", timeout=900)
    return demo / "screens_report.html"


def shot(browser: str, page: Path, steps: list[str], png: Path) -> list[str]:
    """Screenshot of ``page`` after clicking through ``steps``; returns what each step found."""
    driven = with_script(page, png.with_suffix(".html"), clicks(steps))
    chromium(browser, driven.as_uri(), screenshot=png, offline=True)
    return body_attribute(chromium(browser, driven.as_uri(), offline=True), "steps")


@pytest.mark.slow
def test_report_shows_the_summary_tables_and_the_figures(browser, report, tmp_path):
    start = tmp_path / "start.png"
    chromium(browser, report.as_uri(), screenshot=start, offline=True)
    # calibrated on the demo's report at 1280 x 1000: start page 0.007 ink, summary 0.097; the
    # learning curves 0.0017 (2 iterations) to 0.0034 (450) of saturated colour, the start page 0.0005
    assert ink(start, PANE) > 0.003  # the workflow description and the rule graph
    tables = tmp_path / "summary.png"
    assert shot(browser, report, ["Tables", f"eye:{SUMMARY_LABEL}"], tables) == ["ok:Tables", f"ok:eye:{SUMMARY_LABEL}"]
    assert ink(tables, PANE) > 0.05, "the summary pane is blank"
    figure = tmp_path / "figure.png"
    steps = ["Figures", "eye:demo_msd_learning_curves"]
    assert shot(browser, report, steps, figure) == [f"ok:{s}" for s in steps]
    # its coloured curves, against the start page's few coloured dots (the rule graph)
    assert colour(figure, PANE) > max(0.001, 2 * colour(start, PANE)), "the learning-curve figure is not drawn"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "tables"),
    [
        ("summary.html", 1 + 2 * 3),  # the recipe, then per data set and class at least three
        ("claims.html", 1 + 2 + 1 + 1),  # the claims, the attention statistics per data set, balance, tests
        ("report.html", 1 + 2 * 3 + 5),  # both, and the claims section
    ],
)
def test_inline_tables_fit_the_report_pane(browser, report, tmp_path, name, tables):
    """summary.html, claims.html and report.html as the report embeds them, at the pane's width: every table
    drawn, none wider (the claims' long text columns wrap)."""
    embedded = re.search(
        rf"data:text/html;charset=[\w-]+;filename={re.escape(name)};base64,([A-Za-z0-9+/=]+)", report.read_text()
    )
    assert embedded, f"{name} is not in the report"
    page = tmp_path / name
    page.write_bytes(base64.b64decode(embedded[1]))
    measured = with_script(page, tmp_path / "measured.html", MEASURE_TABLES)
    sizes = body_attribute(chromium(browser, measured.as_uri(), size=(PANE_WIDTH, 1000), offline=True), "measure")
    assert len(sizes["tables"]) >= tables
    assert min(sizes["tables"]) > 100  # drawn, not collapsed
    assert sizes["page"] <= sizes["window"], sizes  # no sideways scrolling
    assert max(sizes["tables"]) <= sizes["window"], sizes


@pytest.mark.slow
def test_plots_page_draws_every_panel_offline(browser, tmp_path):
    project = project_copy(tmp_path / "project", with_dvc=True)
    run([str(VENV_BIN / "dvc"), "config", "core.no_scm", "true"], project)
    demo_plot_tables(project / "results" / "demo" / "summary" / "plots", ("demo_isic", "demo_msd"), PLOT_VARIANTS)
    run([str(VENV_BIN / "dvc"), "plots", "show", "-o", "page"], project, env={"HOME": str(tmp_path)})
    page = project / "page" / "index.html"
    dom = chromium(browser, page.as_uri(), offline=True)
    assert dom.count('class="marks"') == 4  # vega-embed drew a canvas per panel, with no network
    assert "Error" not in re.sub(r"<script.*?</script>", "", dom, flags=re.S)
    png = tmp_path / "plots.png"
    chromium(browser, page.as_uri(), screenshot=png, size=(1000, 1000), offline=True)
    assert ink(png) > 0.02
