"""The GPU check: one short, prepared run of the CUDA path, printing one Markdown table.

    bash bench/gpu_check.sh [--dry-run] [--compile] [--steps N] [--skip-workflow]

Sections (each row says its target and whether it is met):
1. the ``paper`` preset (DACN) at 256x256, batch 4, ``joint`` attention, training
   step: eager fp32 against bf16 autocast + channels_last (target >= 1.8x), and
   ``torch.compile`` on top when ``--compile`` is given;
2. ``joint`` against ``none`` step time in the fast setting (target <= 1.2x);
3. the attention block alone at 64x64, C = 64, batch 2, forward + backward,
   against ``scaled_dot_product_attention`` of the same shapes;
4. the demo workflow with ``--resources gpu=1`` (wall time; a temp copy of the project).

``--dry-run`` prints the plan and exits without touching a GPU (the test suite runs
it on CPU). The whole check is sized for <= 8 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipeline_src"))

PLAN = [
    ("paper preset 256², batch 4, joint: fp32 eager", "baseline"),
    ("paper preset 256², batch 4, joint: bf16 + channels_last", "speed-up >= 1.8x over fp32"),
    ("paper preset 256², batch 4, joint: bf16 + channels_last + compile", "optional (--compile)"),
    ("paper preset 256², batch 4, none: bf16 + channels_last", "joint / none <= 1.2x"),
    ("attention 64², C=64, batch 2, fwd+bwd: joint vs SDPA", "reported (ratio)"),
    ("demo workflow, --cores all --resources gpu=1", "wall time (completes)"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit (no GPU needed)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (adds ~1-2 min)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per setting (default 10)")
    p.add_argument("--skip-workflow", action="store_true", help="skip the demo workflow section")
    return p.parse_args(argv)


def print_plan(args: argparse.Namespace) -> None:
    print("# GPU check plan\n")
    print("| # | measurement | target |")
    print("|---|---|---|")
    for i, (what, target) in enumerate(PLAN, 1):
        if "compile" in what and not args.compile:
            target += " - skipped"
        if "workflow" in what and args.skip_workflow:
            target += " - skipped"
        print(f"| {i} | {what} | {target} |")
    print(f"\n{args.steps} timed steps per setting after 3 warm-up steps; CUDA events synchronised.")


def _step_time(variant: str, *, bf16: bool, channels_last: bool, compile_: bool, steps: int) -> float:
    """Median seconds of one training step of the paper preset (Adam, softmax CE)."""
    import torch

    from jointseg.models import build_model

    dev = torch.device("cuda", 0)
    model = build_model(
        arch="denseunet",
        preset="paper",
        in_channels=3,
        num_classes=2,
        attention=variant,
        attention_level="bottleneck",
        input_size=(256, 256),
    ).to(dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99), fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(4, 3, 256, 256, device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (4, 256, 256), device=dev)
    times = []
    for i in range(3 + steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    del model, net, opt
    torch.cuda.empty_cache()
    return sorted(times)[len(times) // 2]


def _attention_times(steps: int) -> tuple[float, float]:
    """(joint block, SDPA) median fwd+bwd seconds at 64x64, C=64, batch 2."""
    import torch
    import torch.nn.functional as F

    from jointseg.attention import build

    dev = torch.device("cuda", 0)
    block = build("joint", 64, (64, 64)).to(dev)
    x = torch.randn(2, 64, 64, 64, device=dev, requires_grad=True)
    q = torch.randn(2, 1, 4096, 32, device=dev, requires_grad=True)

    def run(fn) -> float:
        times = []
        for i in range(3 + steps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn().sum().backward()
            torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    return run(lambda: block(x)), run(lambda: F.scaled_dot_product_attention(q, q, q))


def _workflow_seconds() -> tuple[float, int]:
    """Wall time and exit code of the demo study in a temporary copy of the project."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("Snakefile", "workflow", "config"):
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
        (work / "pipeline_src").symlink_to(ROOT / "pipeline_src")  # the demo archives' paths
        env = {**os.environ, "JOINTSEG_MLFLOW": os.environ.get("JOINTSEG_MLFLOW", "1")}
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "all", "--resources", "gpu=1"],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
        return time.perf_counter() - t0, done.returncode


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        print_plan(args)
        return 0
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible (use --dry-run to see the plan)", file=sys.stderr)
        return 2
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}\n")
    rows = []
    fp32 = _step_time("joint", bf16=False, channels_last=False, compile_=False, steps=args.steps)
    rows.append((PLAN[0][0], f"{fp32 * 1e3:.1f} ms", "-", "-"))
    fast = _step_time("joint", bf16=True, channels_last=True, compile_=False, steps=args.steps)
    rows.append((PLAN[1][0], f"{fast * 1e3:.1f} ms", f"{fp32 / fast:.2f}x", "yes" if fp32 / fast >= 1.8 else "no"))
    if args.compile:
        comp = _step_time("joint", bf16=True, channels_last=True, compile_=True, steps=args.steps)
        rows.append((PLAN[2][0], f"{comp * 1e3:.1f} ms", f"{fp32 / comp:.2f}x", "-"))
    none = _step_time("none", bf16=True, channels_last=True, compile_=False, steps=args.steps)
    rows.append(
        (PLAN[3][0], f"{none * 1e3:.1f} ms", f"joint/none {fast / none:.2f}x", "yes" if fast / none <= 1.2 else "no")
    )
    joint_t, sdpa_t = _attention_times(args.steps)
    rows.append((PLAN[4][0], f"{joint_t * 1e3:.2f} / {sdpa_t * 1e3:.2f} ms", f"{joint_t / sdpa_t:.1f}x", "-"))
    if not args.skip_workflow:
        secs, rc = _workflow_seconds()
        rows.append((PLAN[5][0], f"{secs:.0f} s", f"exit {rc}", "yes" if rc == 0 else "no"))
    print("| measurement | time | ratio | target met |")
    print("|---|---:|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
