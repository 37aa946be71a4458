"""Benchmark the attention variants (and the small DenseUNet) on CPU; prints Markdown.

    PYTHONPATH=pipeline_src .venv/bin/python bench/bench_attention.py            # attention table
    PYTHONPATH=pipeline_src .venv/bin/python bench/bench_attention.py --model    # training images/s

Each measurement runs in a fresh subprocess (2 threads). Time: median of
forward+backward over ``--runs`` runs after one warm-up. Peak memory: the
process's peak RSS (getrusage) during the first forward+backward minus its RSS
just before it, i.e. everything the step allocated at its high-water mark.
Not a test: numbers depend on the machine and its load.
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

CASES = ["reference_joint", "self", "monai_sablock", "monai_sablock_flash", "pointwise", "joint",
         "joint_ckpt", "joint_sum", "joint_product"]  # reference and self first: the ratios need them


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker_attention(case: str, side: int, channels: int, batch: int, runs: int) -> dict:
    import torch

    from jointseg.attention import build
    from jointseg.attention.reference import reference_forward

    torch.manual_seed(0)
    size = (side, side)
    x = torch.randn(batch, channels, side, side, requires_grad=True)
    if case.startswith("monai_sablock"):
        from monai.networks.blocks import SABlock

        block = SABlock(channels, num_heads=1, use_flash_attention=case.endswith("flash"))
        step = lambda: block(x.flatten(2).transpose(1, 2)).sum()  # noqa: E731
    elif case == "reference_joint":
        module = build("joint", channels, size)
        step = lambda: reference_forward(module, x).sum()  # noqa: E731
    elif case == "joint_ckpt":
        module = build("joint", channels, size, checkpoint=True)
        step = lambda: module(x).sum()  # noqa: E731
    else:
        module = build(case, channels, size)
        step = lambda: module(x).sum()  # noqa: E731
    base = _rss_mb()
    step().backward()
    peak = _peak_mb() - base
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step().backward()
        times.append(time.perf_counter() - t0)
    return {"ms": 1000 * statistics.median(times), "peak_mb": peak}


def worker_model(attention: str, level, runs: int) -> dict:
    import torch
    import torch.nn.functional as F

    from jointseg.models import build_model, count_parameters

    torch.manual_seed(0)
    model = build_model("denseunet", "small", attention=attention, attention_level=level, input_size=(64, 64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    x, y = torch.randn(4, 3, 64, 64), torch.randint(0, 2, (4, 64, 64))
    times = []
    for i in range(runs + 3):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 3:  # warm-up
            times.append(time.perf_counter() - t0)
    return {"img_s": 4 / statistics.median(times), "params": count_parameters(model)}


THREADS = 2  # set from --threads


def run_worker(payload: dict) -> dict:
    payload = {**payload, "threads": THREADS}
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(payload)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else f"rc {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def attention_table(sides: list[int], channels: int, batch: int, runs: int, cases: list[str]) -> None:
    print(f"C = {channels}, batch {batch}, {THREADS} threads, median of {runs} forward+backward runs; "
          "peak = peak RSS increase during one forward+backward\n")
    print("| L | variant | time ms | peak MB | time / ref | peak / ref | time / self |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for side in sides:
        res: dict[str, dict] = {}
        for case in cases:  # print each row as soon as it is measured
            r = res[case] = run_worker({"kind": "attention", "case": case, "side": side,
                                        "channels": channels, "batch": batch, "runs": runs})
            ref, own = res.get("reference_joint", {}), res.get("self", {})
            if "error" in r:
                print(f"| {side}² | {case} | error: {r['error'][:60]} | | | | |")
                continue
            ratio = lambda key, base: f"{r[key] / base[key]:.2f}" if key in base else "-"  # noqa: E731
            print(f"| {side}² | {case} | {r['ms']:.1f} | {r['peak_mb']:.1f} | {ratio('ms', ref)} | "
                  f"{ratio('peak_mb', ref)} | {ratio('ms', own)} |")
        sys.stdout.flush()


def model_table(runs: int) -> None:
    print(f"small DenseUNet, 64x64, batch 4, {THREADS} threads, forward+backward+Adam, median of {runs} steps\n")
    print("| attention | level | grid | params | images/s |")
    print("|---|---|---|---:|---:|")
    for attention, level, grid in [("none", "bottleneck", "-"), ("joint", 8, "8x8"), ("self", 8, "8x8"),
                                   ("pointwise", 8, "8x8"), ("joint", "bottleneck", "2x2"),
                                   ("joint", 4, "16x16")]:
        r = run_worker({"kind": "model", "attention": attention, "level": level, "runs": runs})
        if "error" in r:
            print(f"| {attention} | {level} | {grid} | error: {r['error'][:60]} | |")
        else:
            print(f"| {attention} | {level} | {grid} | {r['params']:,} | {r['img_s']:.1f} |")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="store_true", help="measure small DenseUNet training images/s")
    parser.add_argument("--sides", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    parser.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads per measurement")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads
    if args.worker:
        import torch

        p = json.loads(args.worker)
        torch.set_num_threads(p["threads"])
        if p["kind"] == "attention":
            out = worker_attention(p["case"], p["side"], p["channels"], p["batch"], p["runs"])
        else:
            out = worker_model(p["attention"], p["level"], p["runs"])
        print(json.dumps(out))
    elif args.model:
        model_table(max(args.runs, 10))
    else:
        attention_table(args.sides, args.channels, args.batch, args.runs, args.cases)


if __name__ == "__main__":
    main()
