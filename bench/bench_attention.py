"""Benchmark the attention variants (and the small DenseUNet) on CPU; prints Markdown.

    PYTHONPATH=pipeline_src .venv/bin/python bench/bench_attention.py            # variants vs direct
    PYTHONPATH=pipeline_src .venv/bin/python bench/bench_attention.py --sweep    # joint: chunk x recompute
    PYTHONPATH=pipeline_src .venv/bin/python bench/bench_attention.py --model    # training images/s

Every variant (built with default options) is compared with a *direct
implementation* of the same block with the same parameters, idiomatic torch:
dense E1 logits by one matmul, E2 logits by one 1x1 conv to the M = (2H-1)(2W-1)
offset channels and a gather with the fixed L x L index table (each branch the
variant has), one softmax (per term for ``joint_sum``), one matmul with the
value; self-attention also with MONAI's SABlock (with and without flash). The
slow einsum reference (reference.py) only checks that the direct implementation
is right (``--check``, and before every table), never a speed baseline.

Each measurement runs in a fresh subprocess (``--threads`` threads). Time: the
median of ``--runs`` forward+backward runs after a warm-up, in ``--repeat``
round-robin passes over the cases, median over the passes. Peak memory: the
resident high-water mark of one forward+backward (reset via /proc/self/clear_refs,
read from VmHWM) minus the resident size before it, with glibc's mmap threshold
fixed at 128 KiB so that freed tensors leave the process and the resident size
follows the live memory: every allocation counts (tensors, gradients, library
scratch), not only torch's. Not a test: numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

VARIANTS = ["self", "pointwise", "joint", "joint_sum", "parallel", "pointwise_psanet"]
# each case next to what it is compared with, so that a change in load hits both alike
CASES = [c for v in VARIANTS for c in (f"{v}/direct", v)]
CASES[2:2] = ["monai_sablock", "monai_sablock_flash"]  # right after self
THREADS = 2  # set from --threads


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+)", f.read()).group(1)) / 1024


def direct_forward(module, x, table):
    """The block computed directly with its own parameters; ``table`` = relative_index(size).T."""
    import torch
    import torch.nn.functional as F

    from jointseg.attention import ParallelAttention, PSABlock

    if isinstance(module, ParallelAttention):
        return x + sum(direct_forward(p, x, table) - x for p in module.parts)
    n, _, h, w = x.shape
    index = table.expand(n, -1, -1)
    xt = x.flatten(2).transpose(1, 2)  # 1x1 convs as matmuls over positions, as the blocks do
    linear = lambda conv, t: F.linear(t, conv.weight.flatten(1), conv.bias)  # noqa: E731

    def relative(pred, z, branch):  # (N, L, L) [query i, key j]
        fmap = F.conv2d(pred.hidden(z), pred.weight[:, :, None, None]).flatten(2)  # (N, M, L): F at each position
        gathered = fmap.gather(1, index)  # [a, b] = F(x_b)[idx(b -> a)]
        return gathered.transpose(1, 2) if branch == "collect" else gathered

    if isinstance(module, PSABlock):  # softmax over E2, the value is the reduced map itself
        outs = []
        for b in module.branches:
            z = module.reduce[b](x)
            p = torch.softmax(relative(module.predictors[b], z, b), dim=-1)
            outs.append(torch.matmul(z.flatten(2), p.transpose(1, 2)))
        return module.fuse(torch.cat([x, module.proj(torch.cat(outs, 1).view(n, -1, h, w))], 1))
    e1 = None
    if "E1" in module.terms:
        e1 = torch.matmul(linear(module.query, xt), linear(module.key, xt).transpose(1, 2)) * module.e1_factor
    value = linear(module.value, xt).unflatten(-1, (len(module.branches), -1)).permute(0, 2, 3, 1)  # (N,B,Cv,L)
    outs = []
    for b, branch in enumerate(module.branches):
        terms = [] if e1 is None else [e1]
        if "E2" in module.terms:
            terms.append(relative(module.predictors[branch], x, branch))
        # joint: one softmax of the sum; sum: the mean of one softmax per term
        probs = [torch.softmax(t, dim=-1) for t in ([sum(terms)] if module.combine == "joint" else terms)]
        outs.append(torch.matmul(value[:, b], (sum(probs) / len(probs)).transpose(1, 2)))
    agg = linear(module.out, torch.cat(outs, 1).transpose(1, 2))  # (N, L, C)
    return x + module.out_norm(agg.transpose(1, 2).view(n, -1, h, w))


def build_case(case: str, channels: int, side: int, batch: int, dtype=None):
    """(module, input, step) of ``variant[/direct][:option=value...]`` or ``monai_sablock[_flash]``."""
    import torch

    from jointseg.attention import build
    from jointseg.attention.psamask import relative_index

    x = torch.randn(batch, channels, side, side, dtype=dtype, requires_grad=True)
    if case.startswith("monai_sablock"):
        from monai.networks.blocks import SABlock

        block = SABlock(channels, num_heads=1, use_flash_attention=case.endswith("flash"))
        return block, x, lambda: block(x.flatten(2).transpose(1, 2)).sum()
    name, *opts = case.split(":")
    variant, _, impl = name.partition("/")
    options = {k: json.loads(v) for k, v in (o.split("=") for o in opts)}
    if variant == "pointwise_psanet":
        variant, options = "pointwise", {**options, "structure": "psanet"}
    module = build(variant, channels, (side, side), **options).to(dtype)
    if impl == "direct":
        table = relative_index((side, side)).t().contiguous()  # built once, like a module buffer
        return module, x, lambda: direct_forward(module, x, table).sum()
    return module, x, lambda: module(x).sum()


def worker_attention(case: str, side: int, channels: int, batch: int, runs: int, measure: str) -> dict:
    import gc

    import torch

    torch.manual_seed(0)
    module, x, step = build_case(case, channels, side, batch)
    params = [x, *module.parameters()]

    def run() -> None:
        for p in params:
            p.grad = None
        step().backward()

    run()  # warm-up: one-time library allocations
    if measure == "memory":
        for p in params:
            p.grad = None
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the resident high-water mark to the current size
        base = _status_mb("VmRSS")
        run()
        return {"peak_mb": _status_mb("VmHWM") - base}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"ms": 1000 * statistics.median(times)}


def check(channels: int = 8, side: int = 5) -> None:
    """Assert that the direct implementation equals the slow reference (float64) for every variant."""
    import torch

    from jointseg.attention.psamask import relative_index
    from jointseg.attention.reference import reference_forward

    torch.manual_seed(0)
    table = relative_index((side, side)).t().contiguous()
    for variant in VARIANTS:
        module, x, _ = build_case(f"{variant}/direct", channels, side, 2, torch.float64)
        with torch.no_grad():  # perturb every parameter, incl. the zero-initialised output gamma
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        err = (direct_forward(module, x, table) - reference_forward(module, x)).abs().max().item()
        print(f"check {variant}: max |direct - reference| = {err:.1e}")
        assert err < 1e-9, variant


def run_worker(payload: dict) -> dict:
    payload = {**payload, "threads": THREADS}
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
    if payload.get("measure") == "memory":
        env.update(MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    cmd = [sys.executable, __file__, "--worker", json.dumps(payload)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else f"rc {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(cases: list[str], side: int, channels: int, batch: int, runs: int, repeat: int) -> dict[str, dict]:
    """Peak memory and time (median over ``repeat`` round-robin passes) of each case."""
    base = {"kind": "attention", "side": side, "channels": channels, "batch": batch, "runs": runs}
    res = {c: run_worker({**base, "case": c, "measure": "memory"}) for c in cases}
    ok = [c for c in cases if "error" not in res[c]]
    for _ in range(repeat):
        for case in ok:
            r = run_worker({**base, "case": case, "measure": "time"})
            res[case].setdefault("times", []).append(r.get("ms", float("nan")))
    for case in ok:
        res[case]["ms"] = statistics.median(res[case].pop("times"))
    return res


def _row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _ratios(r: dict, base: dict) -> list[str]:
    return [f"{r[k] / base[k]:.2f}" if k in base else "-" for k in ("ms", "peak_mb")]


def _load() -> str:
    return "load average {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())


def attention_table(sides: list[int], channels: int, batch: int, runs: int, repeat: int, cases: list[str]) -> None:
    head = f"C = {channels}, batch {batch}, {THREADS} threads; time = median over {repeat} round-robin passes"
    print(f"{head} of the median of {runs} forward+backward runs; peak = resident high-water mark of one")
    print(f"forward+backward minus the size before it; {_load()} at the start\n")
    print(_row(["L", "case", "time ms", "peak MB", "time / direct", "peak / direct", "time / MONAI"]))
    print(_row(["---"] * 2 + ["---:"] * 5))
    for side in sides:
        res = measure(cases, side, channels, batch, runs, repeat)
        for case, r in res.items():
            if "error" in r:
                print(_row([f"{side}²", case, f"error: {r['error'][:60]}", "", "", "", ""]))
                continue
            direct = res.get(case.split(":")[0].split("/")[0] + "/direct", {})
            monai = res.get("monai_sablock", {}) if case.split(":")[0] == "self" else {}
            vs_monai = f"{r['ms'] / monai['ms']:.2f}" if "ms" in monai else "-"
            print(_row([f"{side}²", case, f"{r['ms']:.1f}", f"{r['peak_mb']:.1f}", *_ratios(r, direct), vs_monai]))
        sys.stdout.flush()
    print(f"\n{_load()} at the end")


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


def model_table(runs: int) -> None:
    print(f"small DenseUNet, 64x64, batch 4, {THREADS} threads, forward+backward+Adam, median of {runs} steps\n")
    print(_row(["attention", "level", "grid", "params", "images/s"]))
    print(_row(["---"] * 3 + ["---:"] * 2))
    rows = [("none", "bottleneck", "-"), ("joint", 8, "8x8"), ("self", 8, "8x8"), ("pointwise", 8, "8x8")]
    for attention, level, grid in rows + [("joint", "bottleneck", "2x2"), ("joint", 4, "16x16")]:
        r = run_worker({"kind": "model", "attention": attention, "level": level, "runs": runs})
        cells = [f"error: {r['error'][:60]}", ""] if "error" in r else [f"{r['params']:,}", f"{r['img_s']:.1f}"]
        print(_row([attention, level, grid, *cells]))
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="store_true", help="measure small DenseUNet training images/s")
    parser.add_argument("--sweep", action="store_true", help="joint over --chunks x recompute on/off")
    parser.add_argument("--check", action="store_true", help="only check direct == reference, then exit")
    parser.add_argument("--sides", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--chunks", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="forward+backward runs per time measurement")
    parser.add_argument("--repeat", type=int, default=3, help="round-robin passes over the cases (time)")
    parser.add_argument("--cases", nargs="+", default=CASES, help="variant[/direct][:option=json...], monai_sablock")
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
            out = worker_attention(p["case"], p["side"], p["channels"], p["batch"], p["runs"], p["measure"])
        else:
            out = worker_model(p["attention"], p["level"], p["runs"])
        print(json.dumps(out))
    elif args.check:
        check()
    elif args.model:
        model_table(max(args.runs, 10))
    elif args.sweep:  # joint over chunk x recompute, at the largest side
        cases = ["joint/direct"] + [f"joint:chunk={c}:checkpoint={r}" for c in args.chunks for r in ("true", "false")]
        attention_table(args.sides[-1:], args.channels, args.batch, args.runs, args.repeat, cases)
    else:
        check()
        attention_table(args.sides, args.channels, args.batch, args.runs, args.repeat, args.cases)


if __name__ == "__main__":
    main()
