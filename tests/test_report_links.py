"""The pages the Snakemake report shows inline have no link that blanks the pane, and every
figure is short enough to read whole in a 1000-px window.

The report shows summary.html and report.html in a sandboxed frame fed from a data URI;
a click on a relative link there turns the pane blank (``about:blank#blocked``), and an
image taller than the pane cannot be scrolled to its top. The quick test checks the pages
`jointseg aggregate` writes for a fake study; the slow one the real report of the demo.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from io import BytesIO

import pytest
from PIL import Image
from reporting_helpers import cli_args, fake_study
from workflow_helpers import snakemake

from jointseg.cli import main as cli_main
from jointseg.reporting.figures import DPI, MAX_HEIGHT_IN

MAX_FIGURE_PX = MAX_HEIGHT_IN * DPI  # 880 px: below a 1000-px window's pane
DATA_URI = re.compile(r"data:([\w/+.-]+);charset=[\w-]+;filename=([^;\"']+);base64,([A-Za-z0-9+/=]+)")


class Anchors(HTMLParser):
    """Every ``<a>`` element and every ``href`` attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "a" or "href" in attributes:
            self.found.append((tag, attributes))


def anchors(page: str) -> list[tuple[str, dict]]:
    parser = Anchors()
    parser.feed(page)
    return parser.found


def test_inline_pages_have_no_links_but_name_the_files(tmp_path):
    study = fake_study(tmp_path)
    out = tmp_path / "summary"
    assert cli_main(cli_args(study, out)) == 0
    for name in ("summary.html", "report.html"):
        page = (out / name).read_text()
        assert anchors(page) == [], (name, anchors(page)[:3])
    report = (out / "report.html").read_text()
    # the file list is still there, as names (the Markdown on disk keeps its links)
    for name in ("summary.csv", "stats.csv", "summary.tex"):
        assert f"<code>{name}</code>" in report, name
    assert "[summary.csv](summary.csv)" in (out / "report.md").read_text()
    assert report.count('src="data:image/png;base64,') >= 2  # figures embedded, not linked


@pytest.mark.slow
def test_demo_report_pages_have_no_links_and_figures_fit_the_window(demo):
    """In the Snakemake report of the demo: no embedded page has a link, no figure is taller
    than 880 px (each attention variant has a figure of its own)."""
    snakemake(demo, "--report", "links_report.html", timeout=900)
    embedded = {
        name: (mime, base64.b64decode(data))
        for mime, name, data in DATA_URI.findall((demo / "links_report.html").read_text(errors="replace"))
    }
    pages = {n: b.decode("utf-8") for n, (mime, b) in embedded.items() if mime == "text/html"}
    assert set(pages) == {"summary.html", "report.html", "claims.html"}
    for name, page in pages.items():
        assert anchors(page) == [], (name, anchors(page)[:3])
    figures = {n: Image.open(BytesIO(b)).size for n, (mime, b) in embedded.items() if mime == "image/png"}
    assert {"demo_isic_attention_joint.png", "demo_msd_attention_self.png"} <= set(figures)
    too_tall = {n: size for n, size in figures.items() if size[1] > MAX_FIGURE_PX}
    assert not too_tall, too_tall
