"""Deterministic mode is set without importing the compiler, and the compiler follows it once loaded."""

import subprocess
import sys

SCRIPT = """
import sys, torch
from jointseg.device import set_deterministic
cpu = torch.device("cpu")
set_deterministic(True, cpu)
print(torch.are_deterministic_algorithms_enabled(), "torch._inductor" in sys.modules)
set_deterministic(False, cpu)
print(torch.are_deterministic_algorithms_enabled())
import torch._inductor.config as inductor
set_deterministic(True, torch.device("cuda"))  # warn-only on CUDA
print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
      inductor.deterministic)
"""


def test_deterministic_flag_without_and_with_the_compiler():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False", "True", "True", "True"]
