"""The GPU check: one short, prepared run of the CUDA path, printing a Markdown table row by row.

    bash bench/gpu_check.sh [--dry-run] [--compile] [--steps N] [--skip-workflow] [--smoke]

Rows (each says its target and whether it is met), printed and flushed as they
are measured, so a crash or the 8-minute limit keeps what was done:
1-5. the ``paper`` preset (DACN) at 256x256, batch 4, ``joint``, training steps as
   ``jointseg train`` runs them (its loss, Adam, GradScaler for fp16; cuDNN
   autotuning as the paper config's ``deterministic: false`` sets it): fp32 with
   TF32 off, TF32 on, bf16 + channels_last (the fp32 attention island, the
   default; target >= 1.8x over fp32), the same with
   ``attention_options.precision: autocast`` (what the island costs), fp16 +
   GradScaler (``amp: auto`` on GPUs without native bf16; the steps its scaler skipped);
6. ``torch.compile`` on top of row 3 (``--compile``);
7. ``none`` against ``joint`` in the fast setting (target joint / none <= 1.2x);
8. the attention block alone at 64x64, C = 64, batch 2, fwd + bwd, against SDPA of those shapes;
9. the demo workflow with ``--resources gpu=1``, 150 iterations, MLflow off (in a temporary copy).
Every row reports the peak GPU memory it allocated (reset, then ``max_memory_allocated``);
rows other than 1-2 run with PyTorch's TF32 defaults, as training does.

``--dry-run`` prints the plan without touching a GPU; ``--smoke`` runs the rows
on the CPU, small: the small preset at 32x32, the attention row at 8x8, one
step, no compile, no workflow (the test suite's check of this code).
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

STEP = "paper preset 256², batch 4"
PLAN = [
    (f"{STEP}, joint: fp32, TF32 off", "baseline"),
    (f"{STEP}, joint: fp32, TF32 on", "reported (speed-up)"),
    (f"{STEP}, joint: bf16 + channels_last", "speed-up >= 1.8x over fp32"),
    (f"{STEP}, joint: bf16 + channels_last, attention follows autocast", "reported (cost of the fp32 island)"),
    (f"{STEP}, joint: fp16 + GradScaler + channels_last", "reported (steps the scaler skipped)"),
    (f"{STEP}, joint: bf16 + channels_last + compile", "optional (--compile)"),
    (f"{STEP}, none: bf16 + channels_last", "joint / none <= 1.2x"),
    ("attention 64², C=64, batch 2, fwd+bwd: joint vs SDPA", "reported (ratio)"),
    ("demo workflow, 150 iterations, MLflow off, --resources gpu=1", "wall time (completes)"),
]
DEMO_TRAIN = "{iterations: 150, val_every: 150, checkpoint_every: 150}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit (no GPU needed)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (adds ~1-2 min)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per setting (default 10)")
    p.add_argument("--skip-workflow", action="store_true", help="skip the demo workflow section")
    p.add_argument("--smoke", action="store_true", help="run the rows on the CPU, tiny (a check of this code)")
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
    print(f"demo workflow: --config train='{DEMO_TRAIN}', JOINTSEG_MLFLOW=0.")


class Bench:
    """The device, sizes and the settings every row shares."""

    def __init__(self, smoke: bool, steps: int) -> None:
        import torch

        self.torch = torch
        self.dev = torch.device("cpu") if smoke else torch.device("cuda", 0)
        self.preset, self.size, self.batch = ("small", 32, 2) if smoke else ("paper", 256, 4)
        self.side = 8 if smoke else 64  # of the attention-alone row
        self.warmup, self.steps = (1, 1) if smoke else (3, steps)

    def sync(self) -> None:
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize()

    def reset_memory(self) -> None:
        if self.dev.type == "cuda":
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_memory(self) -> str:
        return f"{self.torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if self.dev.type == "cuda" else "n/a"

    def tf32(self, on: bool | None) -> None:
        """TF32 for convs and matmuls: on, off, or PyTorch's defaults (None: cuDNN on, matmul off)."""
        backends = self.torch.backends
        backends.cudnn.allow_tf32 = True if on is None else on
        backends.cuda.matmul.allow_tf32 = False if on is None else on


def step_time(b: Bench, variant: str, amp: str | None, attention: str = "fp32", compile_: bool = False):
    """(median seconds of a training step, skipped steps): the paper config's loss, Adam, GradScaler."""
    torch = b.torch
    from jointseg.models import build_model
    from jointseg.training.build import GRAD_SCALE_INIT
    from jointseg.training.losses import build_loss

    model = build_model(
        preset=b.preset,
        attention=variant,
        input_size=(b.size, b.size),
        attention_options={"precision": attention},
    ).to(b.dev)
    fmt = torch.channels_last if amp else torch.contiguous_format
    model = model.to(memory_format=fmt)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99), fused=True)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler(b.dev.type, init_scale=GRAD_SCALE_INIT) if amp == "fp16" else None
    loss_fn = build_loss("ce")
    x = torch.randn(b.batch, 3, b.size, b.size, device=b.dev).contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (b.batch, b.size, b.size), device=b.dev)
    times, skipped = [], 0
    for i in range(b.warmup + b.steps):
        b.sync()
        t0 = time.perf_counter()
        with torch.autocast(b.dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = net(x)
        loss = loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scale = scaler.get_scale()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            skipped += scaler.get_scale() < scale
        b.sync()
        if i >= b.warmup:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], skipped


def attention_times(b: Bench) -> tuple[float, float]:
    """(joint block, SDPA) median fwd+bwd seconds at side x side (64), C=64, batch 2."""
    torch = b.torch
    import torch.nn.functional as F

    from jointseg.attention import build

    block = build("joint", 64, (b.side, b.side)).to(b.dev)
    x = torch.randn(2, 64, b.side, b.side, device=b.dev, requires_grad=True)
    q = torch.randn(2, 1, b.side**2, 32, device=b.dev, requires_grad=True)

    def run(fn) -> float:
        times = []
        for i in range(b.warmup + b.steps):
            b.sync()
            t0 = time.perf_counter()
            fn().sum().backward()
            b.sync()
            if i >= b.warmup:
                times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    return run(lambda: block(x)), run(lambda: F.scaled_dot_product_attention(q, q, q))


def workflow_seconds() -> tuple[float, int]:
    """Wall time and exit code of the shortened demo study in a temporary copy of the project."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("Snakefile", "workflow", "config", "profiles"):
            src = ROOT / name
            (shutil.copytree(src, work / name, symlinks=True) if src.is_dir() else shutil.copy2(src, work / name))
        (work / "pipeline_src").symlink_to(ROOT / "pipeline_src")  # the demo archives' paths
        env = {**os.environ, "JOINTSEG_MLFLOW": "0"}
        command = [sys.executable, "-m", "snakemake", "--cores", "all", "--resources", "gpu=1"]
        t0 = time.perf_counter()
        done = subprocess.run(
            [*command, "--config", f"train={DEMO_TRAIN}"],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
        return time.perf_counter() - t0, done.returncode


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def _step_rows(b: Bench, args: argparse.Namespace) -> list:
    """(plan index, measurement) of the training-step rows; a measurement returns (time, ratio, met)."""
    got: dict[str, float] = {}

    def measure(key: str, tf32: bool | None, *spec, **kw) -> tuple[float, int]:
        b.tf32(tf32)
        got[key], skipped = step_time(b, *spec, **kw)
        return got[key], skipped

    def fp32():
        return _ms(measure("fp32", False, "joint", None)[0]), "-", "-"

    def tf32():
        t = measure("tf32", True, "joint", None)[0]
        return _ms(t), f"{got['fp32'] / t:.2f}x over fp32", "-"

    def bf16():
        t = measure("bf16", None, "joint", "bf16")[0]
        return _ms(t), f"{got['fp32'] / t:.2f}x over fp32", "yes" if got["fp32"] / t >= 1.8 else "no"

    def follow():
        t = measure("follow", None, "joint", "bf16", attention="autocast")[0]
        return _ms(t), f"fp32 island costs {got['bf16'] / t:.2f}x", "-"

    def fp16():
        t, skipped = measure("fp16", None, "joint", "fp16")
        return _ms(t), f"{got['fp32'] / t:.2f}x over fp32; {skipped} of {b.warmup + b.steps} skipped", "-"

    def compiled():
        t = measure("compile", None, "joint", "bf16", compile_=True)[0]
        return _ms(t), f"{got['fp32'] / t:.2f}x over fp32", "-"

    def none():
        t = measure("none", None, "none", "bf16")[0]
        return _ms(t), f"joint/none {got['bf16'] / t:.2f}x", "yes" if got["bf16"] / t <= 1.2 else "no"

    rows = [(0, fp32), (1, tf32), (2, bf16), (3, follow), (4, fp16)]
    return rows + ([(5, compiled)] if args.compile and not args.smoke else []) + [(6, none)]


def _other_rows(b: Bench, args: argparse.Namespace) -> list:
    def attention():
        b.tf32(None)
        joint_t, sdpa_t = attention_times(b)
        return f"{joint_t * 1e3:.2f} / {sdpa_t * 1e3:.2f} ms", f"{joint_t / sdpa_t:.1f}x", "-"

    def workflow():
        secs, rc = workflow_seconds()
        return f"{secs:.0f} s", f"exit {rc}", "yes" if rc == 0 else "no"

    return [(7, attention)] + ([] if args.skip_workflow or args.smoke else [(8, workflow)])


def _print_row(b: Bench, index: int, measure) -> bool:
    """Measure one row and print it at once; an error is printed as the row's result."""
    what = PLAN[index][0]
    b.reset_memory()
    try:
        took, ratio, met = measure()
    except Exception as exc:  # noqa: BLE001 - one failed row must not lose the others
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        print(f"| {index + 1} | {what} | error: {type(exc).__name__}: {first} | - | - | no |", flush=True)
        return False
    print(f"| {index + 1} | {what} | {took} | {b.peak_memory()} | {ratio} | {met} |", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        print_plan(args)
        return 0
    import torch

    from jointseg.config import load_config
    from jointseg.device import runtime_settings

    if not args.smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible (use --dry-run to see the plan)", file=sys.stderr)
        return 2
    b = Bench(args.smoke, args.steps)
    name = "CPU smoke run: small preset, 32², batch 2" if args.smoke else torch.cuda.get_device_name(0)
    deterministic = bool(load_config(ROOT / "config" / "paper.yaml")["deterministic"])
    print(f"device: {name}, torch {torch.__version__}, cudnn.benchmark as training (deterministic: {deterministic})\n")
    print("| # | measurement | time | peak memory | ratio | target met |\n|---|---|---:|---:|---|---|", flush=True)
    with runtime_settings(torch.get_num_threads(), deterministic, b.dev):
        results = [_print_row(b, i, m) for i, m in _step_rows(b, args) + _other_rows(b, args)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
