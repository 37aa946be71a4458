"""The Snakemake report of the session's demo run: every figure, the tables inline, true captions.

Snakemake embeds every registered output as a base64 data URI; it shows HTML
and images inline and anything else (CSV, JSON) as a download link. So the
tables must arrive as HTML (summary.html, report.html written by `aggregate`),
and this test decodes the embedded pages to look at what a reader sees.
"""

from __future__ import annotations

import base64
import html
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import demo_project, snakemake

DATA_URI = re.compile(r"data:([\w/+.-]+);charset=[\w-]+;filename=([^;\"']+);base64,([A-Za-z0-9+/=]+)")


def embedded_files(report: str) -> dict[str, tuple[str, bytes]]:
    """``{file name: (mime type, content)}`` of every output embedded in a Snakemake report."""
    return {name: (mime, base64.b64decode(data)) for mime, name, data in DATA_URI.findall(report)}


@pytest.fixture(scope="module")
def built_report(tmp_path_factory) -> tuple[Path, str]:
    project = demo_project(tmp_path_factory)
    snakemake(project, "--report", "report.html", timeout=900)
    return project, (project / "report.html").read_text(errors="replace")


@pytest.mark.slow
def test_report_embeds_every_figure_and_table(built_report):
    project, report = built_report
    files = embedded_files(report)
    summary_dir = project / "results" / "demo" / "summary"
    figures = sorted(p.name for p in (summary_dir / "figures").glob("*.png"))
    assert len(figures) >= 6, figures  # boxplots, learning curves, qualitative (+ attention) per data set
    for name in figures:
        assert files.get(name, ("", b""))[0] == "image/png", name
        assert files[name][1] == (summary_dir / "figures" / name).read_bytes()
    for name in ("summary.html", "report.html"):
        assert files[name][0] == "text/html", name  # shown inline, not as a download link
    for name in ("summary.csv", "stats.csv", "metrics.json", "provenance.json"):
        assert name in files, name


@pytest.mark.slow
def test_summary_table_is_inline_with_formatted_values(built_report):
    """Each variant's row carries its Dice as ``mean ± std [CI]`` from stats.csv, and a p (Holm) cell."""
    project, report = built_report
    page = embedded_files(report)["summary.html"][1].decode("utf-8")
    stats = pd.read_csv(project / "results" / "demo" / "summary" / "stats.csv")
    dice = stats[stats["metric"] == "dice"]
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    assert set(dice["variant"]) == {*config["variants"], *config["baselines"]}
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)
    for r in dice.itertuples():
        expected = f"{r.mean:.3f} ± {r.std:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
        name = re.compile(rf"<td>(<strong>)?{re.escape(r.variant)}(</strong>)?( \(ref\))?</td>")
        hits = [row for row in rows if name.search(row) and expected in row]
        assert hits, f"no row of {r.variant} with {expected}"
        if r.variant != r.reference:
            p_cell = re.search(re.escape(expected) + r"</td>\s*<td>([^<]*)</td>", hits[0])
            assert p_cell and re.fullmatch(r"(<?\d\.\d{3}|–) \((<?\d\.\d{3}|–)\)", html.unescape(p_cell[1]))
    assert "Training recipe" in page and "<table" in page
    report_page = embedded_files(report)["report.html"][1].decode("utf-8")
    assert "Metric policy" in report_page and "±" in report_page
    assert report_page.count('src="data:image/png;base64,') >= 6  # figures embedded, not dangling links


@pytest.mark.slow
def test_captions_say_what_each_file_holds(built_report):
    _, report = built_report
    with warnings.catch_warnings():  # the embedded JavaScript holds regex escapes such as "\\d"
        warnings.simplefilter("ignore", DeprecationWarning)
        text = html.unescape(report.encode().decode("unicode_escape", errors="ignore"))
    # summary.csv: per-seed means, no CIs; stats.csv: the CIs and tests; the HTML: formatted tables.
    assert "one row per data set × variant × seed × foreground class" in text
    assert "No standard deviations, confidence intervals or tests here" in text
    assert "percentile-bootstrap CI of the mean" in text and "Holm's" in text
    assert "mean ± std [95 % bootstrap CI]" in text
    assert "bootstrap 95% confidence intervals" not in text  # the old, wrong summary.csv caption
