"""The four score terms of the unified attention, for a set of query rows.

Every function returns logits of shape (N, q, L) (or broadcastable to it) for
the q = k*W queries of the k image rows ``rows``; keys run over all L = H*W
positions. Sharing these functions between the forward pass and
``attention_map`` is what makes the maps trustworthy.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TERMS = ("E1", "E2", "E3", "E4")


def query_positions(rows: Tensor, width: int) -> Tensor:
    """Flat indices (k*W,) of all positions in the image rows ``rows``."""
    return (rows[:, None] * width + torch.arange(width, device=rows.device)).flatten()


def content_logits(query: Tensor, key: Tensor, qpos: Tensor) -> Tensor:
    """E1: theta(x_i)^T phi(x_j) / sqrt(C'). query/key (N, L, C')."""
    scale = 1.0 / math.sqrt(query.shape[-1])
    return torch.matmul(query[:, qpos], key.transpose(1, 2)) * scale


def key_logits(key: Tensor, u: Tensor) -> Tensor:
    """E3: u^T phi(x_j), the same for every query -> (N, 1, L)."""
    return torch.matmul(key, u)[:, None, :]


def position_logits(bias: Tensor, rel_index: Tensor, qpos: Tensor) -> Tensor:
    """E4: v_{j-i} from a learned (M,) table -> (1, q, L)."""
    return bias[rel_index[qpos]][None]


def relative_logits(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor,
    rows: Tensor,
    size: tuple[int, int],
    window_index: Tensor,
) -> Tensor:
    """E2 (collect form): [F(x_i)]_{j-i} with F(x_i) = weight @ hidden_i + bias.

    hidden: (N, H, W, C') features of the predicting positions; weight (M, C'),
    bias (M,) are F's last 1x1 conv. Instead of computing all M outputs per
    position (PSANet), each image row multiplies with the (H, 2W-1) window of
    offset rows it can reach, then gathers its H x W logits via
    ``window_index`` (see psamask.row_window_index).
    """
    height, width = size
    n, k = hidden.shape[0], rows.numel()
    # fold the bias into the product: [h, 1] . [w, b] -- saves a (q, L) gather
    hidden = torch.cat([hidden, hidden.new_ones(*hidden.shape[:-1], 1)], dim=-1)
    weight = torch.cat([weight, bias[:, None]], dim=1)
    channels = weight.shape[1]
    grid = weight.reshape(2 * height - 1, (2 * width - 1) * channels)
    # window s = offset rows [s, s + H); image row a needs s = H-1-a (an unfold view)
    windows = grid.unfold(0, height, 1).index_select(0, height - 1 - rows)  # (k, (2W-1)C, H)
    window = windows.view(k, 2 * width - 1, channels, height).permute(0, 3, 1, 2)
    window = window.reshape(k, height * (2 * width - 1), channels)  # (k, H(2W-1), C)
    partial = torch.matmul(hidden[:, rows], window.transpose(1, 2).unsqueeze(0))  # (N,k,W,H(2W-1))
    length = height * width
    logits = partial.gather(-1, window_index.expand(n, k, width, length))
    return logits.reshape(n, k * width, length)
