"""Training throughput benchmark; prints Markdown tables.

CPU part (always): the ``small`` DenseUNet with joint attention at 64x64, batch 4,
2 threads: training images/s, FLOPs per training step (forward + backward,
``torch.utils.flop_counter.FlopCounterMode``), the FLOP/s this achieves, this
CPU's fp32 matmul peak (a large ``torch.mm`` timed) and their ratio (target >= 30 %).

CUDA part (when a GPU is visible): the ``paper`` preset at 256x256, batch 4:
eager fp32 against bf16 autocast + channels_last (target >= 1.8x), and
optionally ``torch.compile``.

    PYTHONPATH=pipeline_src .venv/bin/python bench/bench_training.py [--threads 2] [--steps 10]

Inputs are random tensors (the loader has its own benchmark); the optimiser
step, the Dice+CE loss and the backward pass are included, as in training.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline_src"))

from jointseg.losses import build_loss  # noqa: E402
from jointseg.models import build_model, count_parameters  # noqa: E402


def make(preset: str, size: int, variant: str, device: torch.device, channels_last: bool = False):
    model = build_model(arch="denseunet", preset=preset, in_channels=3, num_classes=2, attention=variant,
                        attention_level="bottleneck" if preset == "paper" else 8,
                        input_size=(size, size)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99), fused=True), build_loss("ce_dice")


def step_fn(model, opt, loss_fn, x, y, dtype=None, channels_last=False):
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


def cpu_part(args) -> None:
    torch.set_num_threads(args.threads)
    dev = torch.device("cpu")
    torch.manual_seed(0)
    model, opt, loss_fn = make("small", args.size, args.variant, dev)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 2, (args.batch, args.size, args.size))
    flops = flops_per_step(model, loss_fn, x, y)
    sec = timed(step_fn(model, opt, loss_fn, x, y), args.steps, 3, dev)
    peak = matmul_peak(args.matmul_n, dev)
    achieved = flops / sec
    print(f"\n### CPU training: small DenseUNet, {args.variant} attention, {args.size}x{args.size}, "
          f"batch {args.batch}, {args.threads} threads, {count_parameters(model) / 1e6:.2f} M parameters\n")
    print("| quantity | value |\n|---|---|")
    print(f"| seconds / step (median of {args.steps}) | {sec:.4f} |")
    print(f"| training images/s | {args.batch / sec:.1f} |")
    print(f"| FLOPs / training step (fwd+bwd) | {flops / 1e9:.3f} GFLOP |")
    print(f"| achieved | {achieved / 1e9:.2f} GFLOP/s |")
    print(f"| fp32 matmul peak ({args.matmul_n}^3 torch.mm) | {peak / 1e9:.2f} GFLOP/s |")
    print(f"| achieved / peak (target >= 30 %) | {100 * achieved / peak:.1f} % |")


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
    print(f"\n### CUDA training: paper DenseUNet, {args.variant} attention, 256x256, batch 4 "
          f"({torch.cuda.get_device_name(0)}); {flops / 1e9:.1f} GFLOP/step; bf16 mm peak {peak / 1e12:.0f} TFLOP/s\n")
    print("| setting | s/step | images/s | TFLOP/s | speed-up vs eager fp32 (target >= 1.8x) |\n|---|---|---|---|---|")
    for name, sec in rows:
        print(f"| {name} | {sec:.4f} | {batch / sec:.1f} | {flops / sec / 1e12:.1f} | {base / sec:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--variant", default="joint")
    parser.add_argument("--matmul-n", type=int, default=2048)
    parser.add_argument("--compile", action="store_true", help="CUDA: also time torch.compile")
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
