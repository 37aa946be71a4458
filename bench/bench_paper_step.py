"""One training step of the ``paper`` preset on CPU: seconds and peak memory; prints Markdown.

    PYTHONPATH=pipeline_src .venv/bin/python bench/bench_paper_step.py [--variants none joint] \
        [--size 256] [--batch 4] [--threads 2] [--steps 3] [--loss ce]

What a CPU-only run of ``config/paper.yaml`` costs per iteration (the
workflow test trains it for a couple of iterations; the study itself runs on
GPUs). Each variant runs in a fresh subprocess with ``--threads`` threads: the
``paper`` DenseUNet (attention at the bottleneck, as in config/paper.yaml) or
a baseline architecture (``--baselines unet``), random inputs of
``batch x 3 x size x size`` and labels in {0, 1}, the loss, backward and an
Adam step (betas (0.9, 0.99)).

Columns: parameters; the first step (allocations, oneDNN set-up); the median
of ``--steps`` later steps, in wall-clock seconds and in CPU seconds of the
process (all threads; less sensitive to other load on a shared machine); the
process's peak RSS (getrusage, the whole process: Python, torch, model,
optimiser state, activations) and its rise during the first step over the RSS
just before it (the step's own high-water mark). Not a test: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline_src"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(arch: str, variant: str, size: int, batch: int, steps: int, loss: str, threads: int) -> dict:
    """Build the model, time one first step and ``steps`` more; return the figures."""
    import torch

    from jointseg.models import build_model, count_parameters
    from jointseg.training.losses import build_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(
        arch,
        "paper",
        in_channels=3,
        num_classes=2,
        attention=variant,
        attention_level="bottleneck",
        input_size=(size, size),
    )
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    loss_fn = build_loss(loss)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 2, (batch, size, size))

    def step() -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        value = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        return time.perf_counter() - t0, time.process_time() - c0

    base = _rss_mb()
    first = step()[0]
    rise = _peak_mb() - base
    times = [step() for _ in range(steps)]
    return {
        "params": count_parameters(model),
        "first_s": first,
        "step_s": statistics.median(t for t, _ in times),
        "cpu_s": statistics.median(c for _, c in times),
        "peak_mb": _peak_mb(),
        "rise_mb": rise,
    }


def run_worker(payload: dict, threads: int) -> dict:
    """Run :func:`worker` in a fresh interpreter with ``threads`` OpenMP/MKL threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(payload)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["none", "joint"])
    parser.add_argument("--baselines", nargs="*", default=[], help="architectures, e.g. unet")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    parser.add_argument("--loss", default="ce", help="ce (the paper recipe) or ce_dice")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(**json.loads(args.worker))))
        return
    runs = [("denseunet", v) for v in args.variants] + [(b, "none") for b in args.baselines]
    print(
        f"\n### paper preset, one training step on CPU: {args.size}x{args.size}, batch {args.batch}, "
        f"{args.threads} threads, {args.loss} loss + Adam, attention at the bottleneck\n"
    )
    print(
        f"| arch | attention | parameters | first step s | s / step (median of {args.steps}) | "
        "CPU s / step | peak RSS MB | RSS rise in first step MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for arch, variant in runs:
        r = run_worker(
            {
                "arch": arch,
                "variant": variant,
                "size": args.size,
                "batch": args.batch,
                "steps": args.steps,
                "loss": args.loss,
                "threads": args.threads,
            },
            args.threads,
        )
        if "error" in r:
            print(f"| {arch} | {variant} | error: {r['error'][:80]} | | | | | |")
        else:
            print(
                f"| {arch} | {variant} | {r['params'] / 1e6:.2f} M | {r['first_s']:.2f} | "
                f"{r['step_s']:.2f} | {r['cpu_s']:.2f} | {r['peak_mb']:.0f} | {r['rise_mb']:.0f} |"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
