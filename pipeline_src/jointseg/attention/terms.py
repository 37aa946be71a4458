"""The four score terms of the unified attention and the scale of E1.

    E1 = theta(x_i)^T phi(x_j)    E2 = [F(x_i)]_{j-i}    E3 = u^T phi(x_j)    E4 = v_{j-i}

Their logits are computed chunk by chunk in fused.py, the same code for the
forward pass and ``attention_map``, which is what makes the maps trustworthy.
"""

from __future__ import annotations

import math

TERMS = ("E1", "E2", "E3", "E4")
E1_SCALES = ("none", "sqrt")


def e1_factor(scale: str, key_channels: int) -> float:
    """The factor on theta^T phi.

    ``"none"``: non-local's embedded Gaussian, softmax(theta^T phi) (Wang et
    al. 2018); ``"sqrt"``: the Transformer's 1/sqrt(C'). At C' ~ 1000 and
    L = 64 the scaled map is almost uniform at initialisation.
    """
    if scale not in E1_SCALES:
        raise ValueError(f"e1_scale must be one of {E1_SCALES}, got {scale!r}")
    return 1.0 if scale == "none" else 1.0 / math.sqrt(key_channels)
