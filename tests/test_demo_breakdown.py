"""bench/demo_breakdown.py: the time table built from a finished run's records."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "demo_breakdown.py"
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t1\t1\t1\t1\t0\t0\t0\t{seconds}\n")


def test_breakdown_counts_loops_from_the_runs_own_records(tmp_path):
    for variant, (train, predict) in {"none": (20.0, 6.0), "joint": (30.0, 8.0)}.items():
        bench(tmp_path / "benchmarks" / "train" / "ds" / variant / "seed0.tsv", train)
        bench(tmp_path / "benchmarks" / "predict" / "ds" / variant / "seed0.tsv", predict)
        run = tmp_path / "results" / "demo" / "ds" / variant / "seed0"
        run.mkdir(parents=True)
        (run / "train_done.json").write_text(json.dumps({"seconds": train / 2, "validation_seconds": 1.0}))
        log = tmp_path / "logs" / "predict" / "ds" / variant / "seed0.log"
        log.parent.mkdir(parents=True)
        log.write_text(f"predict: 100%\nout: 2 prediction(s) written\npredict loop: 2 case(s) in {predict / 4} s\n")
    bench(tmp_path / "benchmarks" / "aggregate" / "aggregate.tsv", 4.0)
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--wall", "40"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    rows = {line.split("|")[1].strip(): line.split("|")[2:6] for line in out.splitlines() if line.startswith("| ")}
    assert [c.strip() for c in rows["train"]] == ["2", "50.0", "27.0", "23.0"]  # 10+15 iterations, 2x1 validation
    assert [c.strip() for c in rows["predict"]] == ["2", "14.0", "3.5", "10.5"]
    assert [c.strip() for c in rows["aggregate"]] == ["1", "4.0", "0.0", "4.0"]
    assert [c.strip() for c in rows["**all jobs**"]] == ["5", "68.0", "30.5", "37.5"]
    assert "Outside the loops: 55 % of the job seconds; the loops fill 38 % of 2 x the wall time." in out


def test_breakdown_without_a_run_fails_clearly(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--wall", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0 and "no benchmark files" in done.stderr
