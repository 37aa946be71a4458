"""Training throughput benchmark; prints Markdown tables.

CPU part (always): by default the ``small`` DenseUNet with joint attention at
64x64, batch 4, 2 threads, set up as ``jointseg train`` sets it up on a CPU
(thread counts and deterministic mode via ``device.runtime_settings``, memory
layout from ``train.channels_last: auto``, the fused Adam of
``training.schedule.build_optimizer``). Rows: NCHW, channels_last (the
training default) and, with ``--compile``, ``torch.compile`` (opt-in; its
compile time is not in the step time). Per row: training images/s and the
FLOP/s achieved, from the FLOPs of one forward + backward
(``torch.utils.flop_counter.FlopCounterMode``; the layout does not change
them) over the median step time, and their ratio to this CPU's fp32 matmul
peak (a large ``torch.mm`` timed in the same process; target >= 30 %).
``--preset paper --size 256 --batch 4 --steps 3`` gives the same figures for
the author's network.

CUDA part (when a GPU is visible): the ``paper`` preset at 256x256, batch 4:
eager fp32 against bf16 autocast + channels_last (target >= 1.8x), and
optionally ``torch.compile``.

    PYTHONPATH=pipeline_src .venv/bin/python bench/bench_training.py [--threads 2] [--steps 10] [--compile]

Inputs are random tensors (the loader has its own benchmark); the optimiser
step, the Dice+CE loss and the backward pass are included, as in training.
Both the step time and the peak are measured under whatever else the machine
runs: on a loaded machine the many small parallel regions of a training step
suffer more than one large matmul, so compare ratios taken on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline_src"))

from jointseg.device import runtime_settings, select_precision  # noqa: E402
from jointseg.models import build_model, count_parameters  # noqa: E402
from jointseg.training.losses import build_loss  # noqa: E402
from jointseg.training.schedule import build_optimizer  # noqa: E402

ADAM = {"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 0.0}  # the recipe's (config/config.yaml)


def make(preset: str, size: int, variant: str, device: torch.device, channels_last: bool = False):
    """(model, optimiser, loss) of a training run; attention where the configs put it."""
    model = build_model(
        arch="denseunet",
        preset=preset,
        in_channels=3,
        num_classes=2,
        attention=variant,
        attention_level="bottleneck" if preset == "paper" else 8,
        input_size=(size, size),
    ).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, build_optimizer(model, ADAM, device), build_loss("ce_dice")


def step_fn(model, opt, loss_fn, x, y, dtype=None, channels_last=False):
    """One training step as ``training.loop.step`` does it (without the schedule)."""
    device = x.device
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(x)
        loss = loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def timed(step, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per step (median of ``steps`` timed steps after ``warmup``)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def flops_per_step(model, loss_fn, x, y) -> int:
    """FLOPs of one forward + backward (FlopCounterMode: convs, matmuls, bmm as 2 * MACs)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss_fn(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def matmul_peak(n: int, device: torch.device, dtype=torch.float32, reps: int = 5) -> float:
    """FLOP/s of an n x n x n matmul (best of ``reps``)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def cpu_rows(args, x, y) -> tuple[list[tuple[str, float]], int, int]:
    """[(setting, seconds per step)], FLOPs per step and parameter count on the CPU."""
    dev = torch.device("cpu")
    default_cl = select_precision(dev, "auto", "auto").channels_last
    configs = [("NCHW", False, False), ("channels_last", True, False)]
    if args.compile:
        configs.append(("channels_last + torch.compile", True, True))
    rows, flops, params = [], 0, 0
    for name, cl, comp in configs:
        torch.manual_seed(0)
        model, opt, loss_fn = make(args.preset, args.size, args.variant, dev, channels_last=cl)
        if not flops:
            flops, params = flops_per_step(model, loss_fn, x, y), count_parameters(model)
        forward = torch.compile(model) if comp else model
        warmup = 3 if args.preset == "small" else 1
        sec = timed(step_fn(forward, opt, loss_fn, x, y, channels_last=cl), args.steps, warmup, dev)
        rows.append((name + (" (training default)" if cl == default_cl and not comp else ""), sec))
        del model, opt, forward
    return rows, flops, params


def cpu_part(args) -> None:
    dev = torch.device("cpu")
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 2, (args.batch, args.size, args.size))
    with runtime_settings(args.threads, deterministic=True, device=dev):
        rows, flops, params = cpu_rows(args, x, y)
        peak = matmul_peak(args.matmul_n, dev)
    print(
        f"\n### CPU training: {args.preset} DenseUNet, {args.variant} attention, {args.size}x{args.size}, "
        f"batch {args.batch}, {args.threads} threads, {params / 1e6:.2f} M parameters; "
        f"{flops / 1e9:.3f} GFLOP / step (fwd+bwd); fp32 matmul peak ({args.matmul_n}^3 torch.mm) "
        f"{peak / 1e9:.1f} GFLOP/s\n"
    )
    print(f"| setting | s / step (median of {args.steps}) | images/s | GFLOP/s | of peak (target >= 30 %) |")
    print("|---|---:|---:|---:|---:|")
    for name, sec in rows:
        print(
            f"| {name} | {sec:.4f} | {args.batch / sec:.1f} | {flops / sec / 1e9:.1f} | "
            f"{100 * flops / sec / peak:.1f} % |"
        )


def cuda_part(args) -> None:
    dev = torch.device("cuda", 0)
    torch.backends.cudnn.benchmark = True
    size, batch = 256, 4
    x = torch.randn(batch, 3, size, size, device=dev)
    y = torch.randint(0, 2, (batch, size, size), device=dev)
    bf16 = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    rows = []
    configs = [("eager fp32", None, False, False), (f"{str(bf16)[6:]} + channels_last", bf16, True, False)]
    if args.compile:
        configs.append((f"{str(bf16)[6:]} + channels_last + compile", bf16, True, True))
    flops = None
    for name, dtype, cl, comp in configs:
        torch.manual_seed(0)
        model, opt, loss_fn = make("paper", size, args.variant, dev, channels_last=cl)
        if flops is None:
            flops = flops_per_step(model, loss_fn, x, y)
        fwd = torch.compile(model) if comp else model
        if dtype is torch.float16:
            raise SystemExit("fp16 needs a GradScaler; this benchmark expects bf16 support")
        sec = timed(step_fn(fwd, opt, loss_fn, x, y, dtype, cl), args.steps, 5 if not comp else 10, dev)
        rows.append((name, sec))
        del model, opt
        torch.cuda.empty_cache()
    peak = matmul_peak(8192, dev, torch.bfloat16)
    base = rows[0][1]
    print(
        f"\n### CUDA training: paper DenseUNet, {args.variant} attention, 256x256, batch 4 "
        f"({torch.cuda.get_device_name(0)}); {flops / 1e9:.1f} GFLOP/step; bf16 mm peak {peak / 1e12:.0f} TFLOP/s\n"
    )
    print("| setting | s/step | images/s | TFLOP/s | speed-up vs eager fp32 (target >= 1.8x) |\n|---|---|---|---|---|")
    for name, sec in rows:
        print(f"| {name} | {sec:.4f} | {batch / sec:.1f} | {flops / sec / 1e12:.1f} | {base / sec:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="small", choices=("small", "paper"), help="CPU part's network")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--variant", default="joint")
    parser.add_argument("--matmul-n", type=int, default=2048)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (CPU and CUDA)")
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()
    if not args.skip_cpu:
        cpu_part(args)
    if torch.cuda.is_available():
        cuda_part(args)
    else:
        print("\n(no CUDA GPU visible: the paper-preset bf16 + channels_last comparison was skipped)")


if __name__ == "__main__":
    main()
