"""`dvc plots show` writes a page that works offline, tells variants apart by colour, and
says nothing about a study that has not run.

A small DVC project (this checkout's dvc.yaml files, .dvc/config and templates) with
plot tables written by :func:`write_plot_tables` from hand-made histories; DVC itself
renders the page. No network: the test fails if the page would load any script or
style from elsewhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from reporting_helpers import PLOT_VARIANTS, demo_plot_tables
from workflow_helpers import VENV_BIN, project_copy, run

from jointseg.reporting import dvc_plots

SCRIPT = re.compile(r"<script\b([^>]*)>", re.I)
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A DVC project without SCM, after the demo ran (its plot tables and metrics.json exist)."""
    root = project_copy(tmp_path_factory.mktemp("plots") / "project", with_dvc=True)
    (root / ".dvc" / "tmp").mkdir(exist_ok=True)
    run([str(VENV_BIN / "dvc"), "config", "core.no_scm", "true"], root)
    summary = root / "results" / "demo" / "summary"
    demo_plot_tables(summary / "plots", ("demo_isic", "demo_msd"), PLOT_VARIANTS)
    (summary / "metrics.json").write_text(json.dumps({"demo_isic": {"joint": {"dice": 0.8}}}))
    return root


def dvc(project: Path, *args: str):
    return run([str(VENV_BIN / "dvc"), *args], project, env={"HOME": str(project)})


def page_specs(html: str) -> list[dict]:
    """The vega-lite spec of every panel on the page, in order."""
    return [json.loads(s) for s in re.findall(r"var spec = (.*);$", html, re.M)]


def test_template_inlines_the_three_libraries(tmp_path):
    page = dvc_plots.write_page_template(tmp_path / "page.html").read_text()
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN scripts go into {scripts}
    scripts = SCRIPT.findall(page)
    assert len(scripts) == 3 and not [s for s in scripts if "src" in s]  # code inline, nothing fetched
    for name in dvc_plots.VEGA_SCRIPTS:
        assert f"/* {name} */" in page
    assert 'version="5.33.0"' in page and 'n="5.23.0"' in page  # vega 5 and vega-lite 5, as DVC's specs want


def test_page_renders_without_network_with_one_colour_per_variant(project, tmp_path):
    done = dvc(project, "plots", "show", "-o", str(tmp_path / "page"))
    assert "failed" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
    html = (tmp_path / "page" / "index.html").read_text()
    assert not REMOTE.search(html), REMOTE.search(html)  # no script, style or image from a server
    assert not [s for s in SCRIPT.findall(html) if "src" in s]
    specs = page_specs(html)
    assert len(specs) == 4  # two data sets x (learning curves, test Dice): the paper study adds no panel
    curves = [s for s in specs if s["mark"]["type"] == "line"]
    assert len(curves) == 2
    for spec in curves:
        assert spec["encoding"]["color"]["field"] == "variant"
        assert spec["encoding"]["strokeDash"]["field"] == "rev"  # dashes for revisions, not for variants
        assert list(dict.fromkeys(v["variant"] for v in spec["data"]["values"])) == PLOT_VARIANTS
        assert spec["mark"]["point"] is True  # a point at each validation
    bars = [s for s in specs if s["mark"]["type"] == "bar"]
    assert [b["encoding"]["color"]["field"] for b in bars] == ["variant", "variant"]


def test_a_study_that_has_not_run_prints_no_error(project):
    """The paper study never ran here: neither command mentions a failure."""
    for command in (("metrics", "show"), ("plots", "show", "--json")):
        done = dvc(project, *command)
        out = done.stdout + done.stderr
        assert "failed to load" not in out.lower() and "paper" not in out, out


def test_the_documented_paper_commands_show_its_plots(project, tmp_path):
    """Once the paper study has run: studies/paper/dvc.yaml's commands draw its curves by colour."""
    text = (project / "studies" / "paper" / "dvc.yaml").read_text()
    command = re.search(r"#   (dvc plots show --template lines_by_variant [^\\]+)\\\n#\s+(\S+)", text)
    assert command, "studies/paper/dvc.yaml lacks the documented plots command"
    plots = project / "results" / "paper" / "summary" / "plots"
    demo_plot_tables(plots, ("isic2017", "msd_hippocampus"), [*PLOT_VARIANTS, "unet"])
    args = command[1].split()[1:] + sorted(str(p.relative_to(project)) for p in plots.glob("*_learning_curves.csv"))
    assert command[2] == "results/paper/summary/plots/*_learning_curves.csv"
    dvc(project, *args, "-o", str(tmp_path / "paper"))
    specs = page_specs((tmp_path / "paper" / "index.html").read_text())
    assert len(specs) == 2 and all(s["encoding"]["color"]["field"] == "variant" for s in specs)
    assert {v["variant"] for v in specs[0]["data"]["values"]} == {*PLOT_VARIANTS, "unet"}
