"""Where a workflow run's time went: a Markdown table per rule, from Snakemake's own records.

Reads what a finished run leaves behind (no re-run):

- ``benchmarks/<rule>/...tsv``: each job's wall seconds and CPU seconds (the
  rules' ``benchmark:`` files);
- ``<results>/<dataset>/<variant>/seed<k>/train_done.json``: the training loop's
  own seconds (``seconds``: iterations; ``validation_seconds``: validation);
- ``logs/predict/.../*.log``: the inference loop's seconds (the line
  ``predict loop: N case(s) in S s`` that ``jointseg predict`` writes).

"In the loops" is the time spent in training iterations, validation and the
prediction loop; everything else (interpreter and library start-up, MLflow,
checkpoints, Snakemake's scheduling) is outside. With several jobs running at
once, job seconds add up to more than the wall time, so the share outside the
loops is given on the job-time basis and the loops' share of the wall time is
their seconds over ``lanes x wall``.

    .venv/bin/python bench/demo_breakdown.py --wall 136 [--study demo] [--lanes 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import defaultdict
from pathlib import Path

LOOP_LINE = re.compile(r"predict loop: \d+ case\(s\) in ([0-9.]+) s")


def job_seconds(bench_dir: Path) -> dict[str, list[float]]:
    """Wall seconds of every job, by rule (the benchmark file's ``s`` column)."""
    by_rule: dict[str, list[float]] = defaultdict(list)
    for tsv in sorted(bench_dir.rglob("*.tsv")):
        rule = tsv.relative_to(bench_dir).parts[0]
        if len(tsv.relative_to(bench_dir).parts) == 1:  # benchmarks/<rule>.tsv
            rule = tsv.stem
        with tsv.open() as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        by_rule[rule].append(float(rows[-1]["s"]))
    return by_rule


def loop_seconds(results: Path, logs: Path) -> dict[str, float]:
    """Seconds inside the training (iterations + validation) and prediction loops, by rule."""
    loops = {"train": 0.0, "predict": 0.0}
    for done in results.rglob("train_done.json"):
        record = json.loads(done.read_text())
        loops["train"] += float(record["seconds"]) + float(record.get("validation_seconds", 0.0))
    for log in (logs / "predict").rglob("*.log"):
        found = LOOP_LINE.findall(log.read_text(errors="replace"))
        loops["predict"] += float(found[-1]) if found else 0.0
    return loops


def table(by_rule: dict[str, list[float]], loops: dict[str, float], wall: float, lanes: int) -> str:
    """The Markdown breakdown: per rule, jobs, job seconds, seconds in loops and outside."""
    lines = [
        "| rule | jobs | job seconds | in the loops | outside the loops |",
        "|---|---:|---:|---:|---:|",
    ]
    total = inside = 0.0
    for rule, secs in sorted(by_rule.items(), key=lambda kv: -sum(kv[1])):
        spent, loop = sum(secs), loops.get(rule, 0.0)
        total, inside = total + spent, inside + loop
        lines.append(f"| {rule} | {len(secs)} | {spent:.1f} | {loop:.1f} | {spent - loop:.1f} |")
    lines.append(
        f"| **all jobs** | {sum(map(len, by_rule.values()))} | {total:.1f} | {inside:.1f} | {total - inside:.1f} |"
    )
    lines.append("")
    lines.append(
        f"Wall time {wall:.0f} s on {lanes} lanes. Outside the loops: {100 * (total - inside) / total:.0f} % of the "
        f"job seconds; the loops fill {100 * inside / (lanes * wall):.0f} % of {lanes} x the wall time."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wall", type=float, required=True, help="the run's wall seconds (from `time`)")
    parser.add_argument("--study", default="demo", help="study name (results/<study>)")
    parser.add_argument("--results-dir", default="results", help="the config's results_dir")
    parser.add_argument("--lanes", type=int, default=2, help="jobs run at once (--cores with one thread per job)")
    args = parser.parse_args()
    by_rule = job_seconds(Path("benchmarks"))
    if not by_rule:
        raise SystemExit("benchmarks/: no benchmark files; run the workflow first")
    print(table(by_rule, loop_seconds(Path(args.results_dir) / args.study, Path("logs")), args.wall, args.lanes))


if __name__ == "__main__":
    main()
