"""Device, threads, determinism and mixed-precision settings of training and inference.

The device is chosen automatically: ``cuda:0`` of the *visible* set (so Slurm's
or the user's ``CUDA_VISIBLE_DEVICES`` decides the physical GPU), else Apple
``mps``, else the CPU. No other ``cuda:N`` is ever named. A job that was given a
GPU (``CUDA_VISIBLE_DEVICES`` names one) but whose torch sees no CUDA says so in
one line and runs on the CPU.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from .gpus import cuda_visible
from .io_utils import UserError


def select_device(spec: str = "auto") -> torch.device:
    """``auto`` -> cuda:0 (of the visible set) / mps / cpu; ``cpu``, ``cuda``, ``mps`` explicitly."""
    spec = (spec or "auto").lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        if cuda_visible():  # a GPU was assigned to this job
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no usable driver or device"
            print(
                f"jointseg: warning: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']} assigns a GPU but torch "
                f"{torch.__version__} sees none ({why}); running on the CPU",
                file=sys.stderr,
            )
        return torch.device("cpu")
    if spec in ("cuda", "cuda:0", "gpu"):
        if not torch.cuda.is_available():
            raise UserError(
                "--device cuda: no CUDA GPU is visible (check CUDA_VISIBLE_DEVICES and "
                "the driver) - use --device auto or cpu"
            )
        return torch.device("cuda", 0)
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise UserError("--device mps: Apple MPS is not available - use --device auto or cpu")
        return torch.device("mps")
    if spec == "cpu":
        return torch.device("cpu")
    raise UserError(
        f"--device {spec}: unknown device; use auto, cpu, cuda or mps (select a GPU with CUDA_VISIBLE_DEVICES)"
    )


def resolve_threads(explicit: int | None = None) -> int:
    """Threads for intra-op parallelism.

    ``explicit`` (``--threads`` / ``train.threads``) > ``$SNAKEMAKE_THREADS`` >
    ``$OMP_NUM_THREADS`` (Snakemake sets it to the job's ``threads``) > the CPUs
    this process may use.
    """
    if explicit:
        return max(1, int(explicit))
    for var in ("SNAKEMAKE_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def set_threads(n: int) -> None:
    """Fix torch's thread counts (a fixed count is part of CPU bit-reproducibility)."""
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(max(1, min(n, 4)))
    except RuntimeError:  # may only be set once, before any parallel work
        pass


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool, device: torch.device) -> None:
    """Deterministic algorithms. On CPU this gives bit-identical reruns; on CUDA some
    kernels (e.g. bilinear upsampling backward) have no deterministic version, so
    there it warns instead of failing and exact equality is not promised."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        _use_deterministic_algorithms(True, warn_only=device.type != "cpu")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        _use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = device.type == "cuda"


def _use_deterministic_algorithms(mode: bool, warn_only: bool = False) -> None:
    """``torch.use_deterministic_algorithms`` without importing the compiler when nothing compiles.

    The public function also sets ``torch._inductor.config.deterministic``, and
    importing that module costs a second or more per job. Until something has
    imported the compiler (``train.compile``), the eager flag alone is all
    there is to set; afterwards (or on a torch without the private setter) the
    public function runs.
    """
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        setter(mode, warn_only=warn_only)


def compile_model(model: torch.nn.Module) -> Callable:
    """``torch.compile(model)``, with the compiler's determinism flag set as the eager one is."""
    torch.use_deterministic_algorithms(
        torch.are_deterministic_algorithms_enabled(), warn_only=torch.is_deterministic_algorithms_warn_only_enabled()
    )
    return torch.compile(model)


@contextlib.contextmanager
def runtime_settings(threads: int, deterministic: bool, device: torch.device) -> Iterator[None]:
    """Set thread count and determinism for a block, then restore the previous values
    (so that calling ``train()`` from Python leaves the process as it found it)."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_bench, old_cudnn_det = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    set_threads(threads)
    set_deterministic(deterministic, device)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = old_bench, old_cudnn_det


@dataclass(frozen=True)
class Precision:
    """Mixed-precision settings: autocast dtype (None = fp32) and whether a GradScaler is needed."""

    dtype: torch.dtype | None
    scaler: bool
    channels_last: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def native_bf16() -> bool:
    """Whether the current CUDA device computes bf16 natively (Ampere and later).

    ``torch.cuda.is_bf16_supported()`` alone also says yes where bf16 is only
    emulated (V100, T4: no bf16 tensor cores, no bf16 cuDNN convolutions), where
    fp16 + GradScaler is the fast choice.
    """
    return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def select_precision(device: torch.device, amp: str = "auto", channels_last: str = "auto") -> Precision:
    """``amp``: auto (CUDA: bf16 where the GPU has it natively, else fp16 + GradScaler;
    elsewhere fp32), bf16, fp16 (+ GradScaler; CUDA and CPU), off. ``channels_last``:
    auto (on for CUDA and CPU, off for MPS), on, off.

    On a CPU, oneDNN's convolutions work in NHWC; with NCHW tensors every conv
    reorders its input, weight and gradients, so channels_last trains the
    DenseUNets about 1.3x faster (bench/bench_training.py). Results change in the
    last bits only, and reruns stay bit-identical.
    """
    cuda = device.type == "cuda"
    if amp == "auto":
        if cuda:
            dtype = torch.bfloat16 if native_bf16() else torch.float16
        else:
            dtype = None  # CPU autocast is slower than fp32 for these convs and breaks bit-equality
    elif amp == "bf16":
        dtype = torch.bfloat16
    elif amp == "fp16":
        if device.type not in ("cuda", "cpu"):  # GradScaler's devices
            raise UserError(f"train.amp: fp16 needs a CUDA GPU or the CPU; use auto, bf16 or off on {device.type}")
        dtype = torch.float16
    elif amp == "off":
        dtype = None
    else:
        raise UserError(f"train.amp: unknown value {amp!r}; use auto, bf16, fp16 or off")
    if channels_last not in ("auto", "on", "off"):
        raise UserError(f"train.channels_last: unknown value {channels_last!r}; use auto, on or off")
    cl = device.type in ("cuda", "cpu") if channels_last == "auto" else channels_last == "on"
    return Precision(dtype=dtype, scaler=dtype is torch.float16, channels_last=cl)
