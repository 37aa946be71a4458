"""``report.md``: what was run and how it was scored, links to tables and figures, provenance;
and the HTML pages of ``report.md`` and ``summary.md`` that the Snakemake report shows inline."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from ..io_utils import atomic_write_text
from ..provenance import markdown_lines

METRIC_POLICY = (
    "Metric policy: Dice, IoU, sensitivity, specificity, precision from the confusion counts per foreground "
    "class (background excluded); HD95 (max of the two directed 95th percentiles) and ASSD (mean of both "
    "directions' surface distances) by MONAI, in mm for NIfTI, px for 2-D images. Both masks empty: "
    "Dice = IoU = 1, distances 0; one empty: Dice = IoU = 0, distances NaN (counted, excluded from the "
    "distance means). Beside that mean, the *penalised* mean counts a one-empty case as the image diagonal "
    "(mm or px); for data sets in pixels, distances are also given as a percentage of each case's image "
    "diagonal. Statistics pool each case over seeds; p-values are two-sided paired Wilcoxon signed-rank "
    "tests against the reference variant, with Holm's adjustment over the variants compared for each "
    "data set, class and metric."
)


def provenance(config_path: str | None, manifest_paths: dict[str, Path], datasets: list[str]) -> list[str]:
    """Markdown bullet lines: config hash, code commit, package versions, hashes of the given manifests."""
    return markdown_lines(config_path, {ds: manifest_paths[ds] for ds in datasets})


def _figure_lines(datasets: list[str], figure_paths: list[Path], out: Path) -> list[str]:
    lines = []
    for ds in datasets:
        for p in figure_paths:
            if p.name.startswith(f"{ds}_"):
                lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})", ""]
    return lines


def report_markdown(
    config: dict,
    config_path: str | None,
    manifest_paths: dict[str, Path],
    out: Path,
    datasets: list[str],
    recipe_md: str,
    tables_md: str,
    figure_paths: list[Path],
    notes: list[str],
) -> str:
    """The text of ``report.md``."""
    lines = [
        f"# jointseg report: study `{config.get('study', '?')}`",
        "",
        "Reconstruction of Zhang, Dong, Li, *Joint Attention for Medical Image Segmentation* (ISBI 2022); "
        "not the authors' code.",
        "",
        METRIC_POLICY,
        "",
        recipe_md,
        "## Files",
        "",
        "In the summary folder (the Snakemake report offers the CSVs and these pages under *Tables*).",
        "",
        "- [summary.csv](summary.csv): per data set, variant, seed and class (with parameter counts)",
        "- [stats.csv](stats.csv): pooled over seeds, bootstrap CIs, Wilcoxon tests, Holm-adjusted p",
        "- [summary.md](summary.md), [summary.tex](summary.tex): tables",
        "- [summary.html](summary.html), [report.html](report.html): summary.md and this report as HTML",
        "",
        "## Figures",
        "",
        *_figure_lines(datasets, figure_paths, out),
    ]
    if notes:
        lines += ["## Not produced", "", *(f"- {n}" for n in notes), ""]
    lines += ["## Provenance", "", *provenance(config_path, manifest_paths, datasets), ""]
    body = tables_md.split("\n", 1)[1] if tables_md.startswith("# ") else tables_md
    lines += ["## Tables", body]
    return "\n".join(lines).rstrip() + "\n"


# --- HTML -----------------------------------------------------------------------------------------
# The Snakemake report shows an HTML output inline (in an iframe fed from a data URI), but a CSV or
# Markdown file only as a download link. So summary.md and report.md are also written as HTML pages,
# rendered from the very same Markdown (one source of truth): the pipe tables through pandas'
# ``to_html``, the few other constructs the two files use (headings, paragraphs, bullets, emphasis,
# code, links, images) by the small converter below. Images become data URIs: a page shown from a
# data URI has no folder to resolve ``figures/x.png`` against. For the same reason the pages have no
# links: the report shows them in a sandboxed frame, where a click on a relative link blanks the pane
# (about:blank#blocked). A link becomes its text in <code>; the file is in the summary folder.
# Sized so that every table fits the report's pane (about 1150 px wide at a 1440-px window; a
# test measures it in Chromium): the widest, two metrics with CIs, is about 760 px.
_CSS = (
    "body{font-family:sans-serif;font-size:13px;margin:1em;max-width:110em}"
    "table{border-collapse:collapse;margin:.5em 0 1.2em}th,td{border-bottom:1px solid #ccc;"
    "padding:2px 6px;text-align:right;white-space:nowrap}th{background:#f0f0f0}"
    "td:first-child,th:first-child,table.left td,table.left th{text-align:left}"
    "code{background:#f4f4f4;padding:0 2px}img{max-width:100%}"
)
_INLINE = (
    (re.compile(r"!\[([^\]]*)\]\(([^)]+)\)"), r'<img alt="\1" src="\2">'),
    (re.compile(r"\[([^\]]+)\]\(([^)]+)\)"), r"<code>\1</code>"),
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"\*([^*\s][^*]*)\*"), r"<em>\1</em>"),
)


def _inline(text: str) -> str:
    """Escaped text with Markdown's inline markup as HTML."""
    text = html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


def _split_row(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_html(lines: list[str], number: int) -> str:
    """A Markdown pipe table (header, ``---`` row, body) through ``DataFrame.to_html``.

    Without a right-aligned column it is a text table (the recipe). Beside right-aligned
    ones, a left-aligned column after the first is text that wraps (the claims' reasons),
    so that the table fits its pane: a rule for those columns of this table (``number``).
    """
    head, align, body = _split_row(lines[0]), _split_row(lines[1]), [_split_row(row) for row in lines[2:]]
    frame = pd.DataFrame([[_inline(c) for c in row] for row in body], columns=[_inline(h) for h in head])
    if not any(a.endswith(":") for a in align):
        return frame.to_html(index=False, escape=False, border=0, classes=["left"])
    text = [k + 1 for k, a in enumerate(align) if k and not a.endswith(":")]
    table = frame.to_html(index=False, escape=False, border=0, table_id=f"table-{number}" if text else None)
    if not text:
        return table
    cells = ",".join(f"#table-{number} td:nth-child({k}),#table-{number} th:nth-child({k})" for k in text)
    return f"<style>{cells}{{text-align:left;white-space:normal;min-width:12em}}</style>\n{table}"


def _image_html(line: str, base: Path) -> str:
    """``![alt](path)`` as an embedded image (a data URI), or a note where the file is missing."""
    alt, src = re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line).groups()
    path = base / src
    if not path.is_file():
        return f"<p>{html.escape(alt)}: <code>{html.escape(src)}</code> not found</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    mime = "image/png" if path.suffix == ".png" else "application/octet-stream"
    return f'<figure><img alt="{html.escape(alt)}" src="data:{mime};base64,{data}"></figure>'


def _anchor(heading: str, taken: set[str]) -> str:
    """A unique id for a heading, so that ``report.html#claims`` opens at that section."""
    slug = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "section"
    anchor, n = slug, 1
    while anchor in taken:
        n += 1
        anchor = f"{slug}-{n}"
    taken.add(anchor)
    return anchor


def _blocks(lines: list[str], base: Path) -> list[str]:
    """HTML blocks of Markdown lines: headings, tables, images, bullet lists, paragraphs."""
    out, i, ids = [], 0, set()
    while i < len(lines):
        line = lines[i].rstrip()
        j = i + 1
        if not line:
            pass
        elif m := re.match(r"(#{1,4}) (.*)", line):
            level, anchor = len(m[1]), _anchor(m[2], ids)
            out.append(f'<h{level} id="{anchor}">{_inline(m[2])}</h{level}>')
        elif line.startswith("|"):
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table_html(lines[i:j], len(out)))
        elif re.fullmatch(r"!\[[^\]]*\]\([^)]+\)", line):
            out.append(_image_html(line, base))
        elif line.startswith("- "):
            while j < len(lines) and lines[j].startswith("- "):
                j += 1
            out.append("<ul>" + "".join(f"<li>{_inline(item[2:].rstrip())}</li>" for item in lines[i:j]) + "</ul>")
        else:
            while j < len(lines) and lines[j].strip() and not re.match(r"[#|!-]", lines[j]):
                j += 1
            out.append("<p>" + _inline(" ".join(text.strip() for text in lines[i:j])) + "</p>")
        i = j
    return out


def markdown_html(markdown: str, base: Path) -> str:
    """A self-contained HTML page of ``markdown`` (summary.md, report.md); images relative to ``base``."""
    lines = markdown.splitlines()
    title = next((h[2:] for h in lines if h.startswith("# ")), "jointseg")
    body = "\n".join(_blocks(lines, base))
    return (
        f'<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>{_inline(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write_html(markdown_path: Path, html_path: Path) -> Path:
    """Write ``html_path``, the HTML page of the Markdown file ``markdown_path``; returns it."""
    atomic_write_text(html_path, markdown_html(markdown_path.read_text(), markdown_path.parent))
    return html_path
