"""Headless Chromium for the tests that look at pages as a person would (tests/test_screenshots.py)
and for the README's screenshots (ci/readme_images.py).

Chromium runs as root here, so with ``--no-sandbox``; a fresh profile per call; no network
beyond what the page itself needs (``offline=True`` makes every host lookup fail, so a page
that would fetch a script from a CDN shows it). A page is driven by a script appended to a
copy of it (:func:`with_script`): clicks by text, and values written into the DOM, which
``--dump-dom`` returns after ``--virtual-time-budget`` milliseconds of page time.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "ci" / "chromium" / "install_chromium.sh"
CANNOT_INSTALL = 3  # install_chromium.sh's exit status for "not root / no apt-get"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_or_install() -> tuple[str | None, str]:
    """``(path, why)``: the browser, installing it with ci/chromium/install_chromium.sh if needed;
    ``(None, reason)`` when it cannot be installed here (not root, no apt-get)."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path, ""
    done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900, check=False)
    if done.returncode == CANNOT_INSTALL:
        return None, done.stderr.strip()
    if done.returncode != 0:
        raise RuntimeError(f"{INSTALL} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1], ""


def chromium(
    browser: str,
    url: str,
    *,
    screenshot: Path | None = None,
    size: tuple[int, int] = (1280, 1000),
    budget_ms: int = 8000,
    offline: bool = False,
) -> str:
    """Load ``url``; write a PNG of the window to ``screenshot``, else return the DOM."""
    with tempfile.TemporaryDirectory(prefix="jointseg-chromium-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"]
        cmd.append(f"--virtual-time-budget={budget_ms}")
        if offline:
            cmd.append("--host-resolver-rules=MAP * ~NOTFOUND")
        cmd += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
        done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0 or (screenshot and not screenshot.is_file()):
        raise RuntimeError(f"chromium exited {done.returncode} on {url}:\n{done.stderr[-3000:]}")
    return done.stdout


# Steps: "text" clicks the last element whose whole text is that; "eye:LABEL" the eye button of
# the Snakemake report's row labelled LABEL. Each step is recorded in the body's data-steps.
_CLICKS = """
<script>
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const done = [];
  for (const step of STEPS) {
    await sleep(1000);
    let el;
    if (step.startsWith('eye:')) {
      const label = step.slice(4);
      const row = [...document.querySelectorAll('tr')].find(r => r.cells.length && r.cells[0].textContent.trim() === label);
      el = row && row.querySelector('a[iconname="eye"]');
    } else {
      el = [...document.querySelectorAll('a, button, li, span, div, td, p')].filter(e => e.textContent.trim() === step).pop();
    }
    done.push((el ? 'ok:' : 'missing:') + step);
    if (el) el.click();
  }
  document.body.setAttribute('data-steps', JSON.stringify(done));
})();
</script>
"""

# Writes, for a page of tables: each table's width, the page's and the window's width.
MEASURE_TABLES = """
<script>
window.addEventListener('load', () => {
  const widths = [...document.querySelectorAll('table')].map(t => Math.round(t.getBoundingClientRect().width));
  document.body.setAttribute('data-measure', JSON.stringify(
    {tables: widths, page: document.documentElement.scrollWidth, window: window.innerWidth}));
});
</script>
"""


def with_script(page: Path, out: Path, script: str) -> Path:
    """A copy of ``page`` at ``out`` with ``script`` appended to its body."""
    html = page.read_text(encoding="utf-8")
    at = html.rfind("</body>")
    out.write_text(html[:at] + script + html[at:], encoding="utf-8")
    return out


def clicks(steps: list[str]) -> str:
    """The script that performs ``steps`` (see above), one a second."""
    return _CLICKS.replace("STEPS", json.dumps(steps))


def body_attribute(dom: str, name: str):
    """The JSON value a script stored in ``<body data-NAME>`` (None if absent)."""
    import html

    found = re.search(rf'<body[^>]*\sdata-{name}="([^"]*)"', dom)
    return json.loads(html.unescape(found[1])) if found else None


def ink(png: Path, box: tuple[int, int, int, int] | None = None) -> float:
    """Fraction of pixels (in ``box``: left, top, right, bottom) that are not near-white."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        grey = np.asarray((im.crop(box) if box else im).convert("L"), dtype=float)
    return float((grey < 200).mean())


def colour(png: Path, box: tuple[int, int, int, int] | None = None) -> float:
    """Fraction of pixels (in ``box``) in a saturated colour (channels more than 80 apart):
    the curves of a figure, not text or grey lines."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        rgb = np.asarray((im.crop(box) if box else im).convert("RGB"), dtype=float)
    return float(((rgb.max(axis=-1) - rgb.min(axis=-1)) > 80).mean())
