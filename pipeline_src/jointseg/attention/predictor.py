"""F of PSANet: the per-position predictor of a relative-offset map (term E2).

    F(z) = W_F ReLU(BN(W_h z)),   W_F: (M, C'),  M = (2H-1)(2W-1)

``collect``: query i attends with [F_c(z_i)]_{j-i}, predicted at the query.
``distribute``: query i attends with [F_d(z_j)]_{i-j}, predicted at the key
(PSANet, Zhao et al. 2018; semseg's psamask types 0 and 1). Both are
normalised over the keys j. W_F has no bias, as in PSANet: a per-offset bias
under a softmax is the relative-position term E4, so a biased F would silently
turn "E2" into E2 + E4.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .psamask import num_offsets

BRANCHES = ("collect", "distribute")


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 1) -> nn.Sequential:
    """Bias-free conv, BatchNorm, ReLU (PSANet's and semseg's building block)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class RelativePredictor(nn.Module):
    """F for one branch; its last 1x1 conv is kept as ``weight`` (M, C').

    That conv is never run as a full M-channel conv: the fused attention
    (fused.py) multiplies the hidden features with the offset windows each
    query row reaches.
    """

    def __init__(self, in_channels: int, hidden: int, size: tuple[int, int], branch: str) -> None:
        super().__init__()
        if branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES}, got {branch!r}")
        self.branch = branch
        self.size = (int(size[0]), int(size[1]))
        self.hidden = conv_bn_relu(in_channels, hidden)
        self.weight = nn.Parameter(torch.empty(num_offsets(self.size), hidden))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # as nn.Conv2d would

    def features(self, z: Tensor) -> Tensor:
        """The hidden features ReLU(BN(W_h z)) as (N, H, W, C'), F's input at every position."""
        return self.hidden(z).permute(0, 2, 3, 1)
