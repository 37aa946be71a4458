"""The GPUs this machine offers to the workflow.

No torch import: the Snakefile (which sizes the local ``gpu`` resource with it)
and ``workflow/scripts/gpu_slot.py`` (which pins each job to free devices) call
it before, or instead of, anything heavy.
"""

from __future__ import annotations

import os
import subprocess


def visible_devices() -> list[str]:
    """GPU ids this machine offers: ``$JOINTSEG_GPUS`` (comma-separated) or ``nvidia-smi -L``'s indices."""
    env = os.environ.get("JOINTSEG_GPUS")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]
