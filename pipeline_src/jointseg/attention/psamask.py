"""The offset grid of relative-position logits (PSANet's ``psamask`` as a gather).

A position-dependent map over relative offsets has M = (2H-1)(2W-1) entries,
laid out as an offset grid (2H-1, 2W-1) whose centre (H-1, W-1) is offset 0.
Query i = (h_i, w_i) and key j = (h_j, w_j) meet at offset j - i, i.e. at

    idx[i, j] = (h_j - h_i + H - 1) * (2W - 1) + (w_j - w_i + W - 1).

The attention itself reads no table (fused.py takes strided views instead);
``relative_index`` is the plain statement of the layout, for tests and the
benchmark's direct implementation.
"""

from __future__ import annotations

import torch
from torch import Tensor


def num_offsets(size: tuple[int, int]) -> int:
    """M = (2H-1)(2W-1): how many relative offsets an H x W map has."""
    height, width = size
    return (2 * height - 1) * (2 * width - 1)


def relative_index(size: tuple[int, int]) -> Tensor:
    """(L, L) int64 table: ``idx[i, j]`` = offset-grid index of ``j - i``."""
    height, width = size
    hh, ww = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    hh, ww = hh.flatten(), ww.flatten()
    dh = hh[None, :] - hh[:, None] + height - 1
    dw = ww[None, :] - ww[:, None] + width - 1
    return dh * (2 * width - 1) + dw
