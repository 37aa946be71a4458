"""Take the README's screenshots (docs/img/) from a finished `make demo` in this checkout.

    make demo && .venv/bin/python ci/readme_images.py [--out docs/img]

Headless Chromium (ci/chromium/install_chromium.sh) opens, as a person would:
the Snakemake report's start page, summary.html inline in it, the learning curves in
its figure pane, the claims page (claims, attention statistics, balance); the MLflow
UI (`mlflow server` on 127.0.0.1): the shared view of the training runs (table and
chart view, the link the README gives) and the parent's per-run table; and the
`dvc plots show` page, each with every host lookup failing (nothing is fetched).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the browser helpers the screenshot tests use

from browser_helpers import chromium, clicks, find_or_install, with_script  # noqa: E402

from jointseg.tracking.views import training_view_link  # noqa: E402

BIN = Path(sys.executable).parent
SUMMARY_LABEL = "summary: mean ± std [95% CI], p (Holm), recipe"


def report_images(browser: str, out: Path, work: Path) -> None:
    """The Snakemake report: start page, summary.html inline, a figure, the claims page."""
    report = work / "report.html"
    subprocess.run([str(BIN / "snakemake"), "--report", str(report)], cwd=ROOT, check=True, capture_output=True)
    chromium(browser, report.as_uri(), screenshot=out / "snakemake_report.png", size=(1400, 1000), offline=True)
    for name, steps in (
        ("summary_table.png", ["Tables", f"eye:{SUMMARY_LABEL}"]),
        ("report_learning_curves.png", ["Figures", "eye:demo_msd_learning_curves"]),
        ("report_claims.png", ["Claims", "eye:claims, attention statistics, balance, tests"]),
    ):
        page = with_script(report, work / f"{name}.html", clicks(steps))
        chromium(browser, page.as_uri(), screenshot=out / name, size=(1440, 1000), offline=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_images(browser: str, out: Path, work: Path) -> None:
    """The MLflow UI: the experiment (opens on its runs), the chart view of the training runs, compare."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{ROOT / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("jointseg-demo").experiment_id
    port = free_port()
    log = open(work / "mlflow.log", "w")  # noqa: SIM115 - open while the server runs
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=log,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        parent = client.search_runs([experiment], "tags.`jointseg.kind` = 'pipeline'", max_results=1)[0].info.run_id
        shared = training_view_link(experiment, base)  # the link the README gives
        views = {
            "mlflow_runs.png": shared.replace("compareRunsMode=CHART", "compareRunsMode=TABLE"),
            "mlflow_chart_view.png": shared,
            "mlflow_parent_table.png": f"{base}/#/experiments/{experiment}/runs/{parent}/artifacts/summary_table.json"
            "?workflowType=machine_learning",
        }
        for name, url in views.items():
            chromium(browser, url, screenshot=out / name, size=(1600, 1200), budget_ms=20000)
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def dvc_image(browser: str, out: Path, work: Path) -> None:
    subprocess.run([str(BIN / "dvc"), "plots", "show", "-o", str(work / "plots")], cwd=ROOT, check=True)
    page = work / "plots" / "index.html"
    chromium(browser, page.as_uri(), screenshot=out / "dvc_plots.png", size=(1280, 900), offline=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    browser, why = find_or_install()
    if browser is None:
        sys.exit(f"readme_images: no Chromium: {why}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jointseg-readme-") as tmp:
        work = Path(tmp)
        report_images(browser, args.out, work)
        mlflow_images(browser, args.out, work)
        dvc_image(browser, args.out, work)
    print(f"readme_images: wrote {sorted(p.name for p in args.out.glob('*.png'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
