"""PSANet's point-wise spatial attention block as published (structure ``"psanet"``).

Follows ``PSA`` in hszhao/semseg ``model/psanet.py`` (psa_type=2, i.e. both
branches; psa_softmax on; normalization_factor 1), per branch b:

    z_b = ReLU(BN(W_r^b x))                      reduce: C -> C_r (semseg 2048 -> 512)
    A_b = softmax_j E2_b(i, j),  F_b(z) = W_F^b ReLU(BN(W_h^b z))   W_F^b: C_r -> M, no bias
    o_b(i) = sum_j A_b(i, j) z_b(j)              the value is z_b itself
    y = ReLU(BN(W_3x3 [x, ReLU(BN(W_p [o_collect, o_distribute]))]))

In semseg the last conv-BN-ReLU (3x3 over the concatenation with x) is the
first layer of the segmentation head; here it belongs to the block so that the
block maps C -> C. Differences from semseg: no shrink_factor (the attention
runs on the full feature grid the module was built for) and the attention runs
through the fused function (fused.py), never building the M-channel map or an
L x L matrix.
Unlike the unified block this one is NOT the identity at initialisation: its
output is a fresh conv-BN-ReLU of [x, attended features] (non-negative).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import fused
from .base import FusedAttentionBlock, check_precision
from .predictor import BRANCHES, RelativePredictor, conv_bn_relu


class PSABlock(FusedAttentionBlock):
    """PSANet's block for ``channels`` at feature ``size`` with C_r = C // reduction.

    Args:
        channels: C of the input (and output) map.
        size: (H, W) the module is built for.
        branches: subset of ("collect", "distribute"); order = concatenation order.
        reduction: C_r = max(C // reduction, 1); semseg uses 4 (2048 -> 512).
        chunk: queries per chunk (rounded to whole image rows).
        checkpoint: recompute each chunk's logits in backward, so the peak memory is O(chunk * L).
        precision: "fp32" (default: fp32 inside autocast too) | "autocast" (follow it); base.py.
    """

    def __init__(
        self,
        channels: int,
        size: tuple[int, int],
        branches: tuple[str, ...] = BRANCHES,
        reduction: int = 4,
        chunk: int = 512,
        checkpoint: bool = True,
        variant: str = "pointwise",
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        self.precision = check_precision(precision)
        if not branches or any(b not in BRANCHES for b in branches):
            raise ValueError(f"branches must be a non-empty subset of {BRANCHES}, got {branches}")
        if int(reduction) < 1:
            raise ValueError(f"psa_reduction must be a positive integer, got {reduction}")
        self.variant, self.channels, self.branches = variant, channels, tuple(branches)
        self.size = (int(size[0]), int(size[1]))
        self.chunk, self.checkpoint = chunk, checkpoint
        self.terms = ("E2",)
        mid = max(channels // int(reduction), 1)
        self.reduced_channels = mid
        self.reduce = nn.ModuleDict({b: conv_bn_relu(channels, mid) for b in self.branches})
        self.predictors = nn.ModuleDict({b: RelativePredictor(mid, mid, self.size, b) for b in self.branches})
        self.proj = conv_bn_relu(mid * len(self.branches), channels)
        self.fuse = conv_bn_relu(2 * channels, channels, kernel=3)

    @classmethod
    def from_options(cls, channels: int, size: tuple[int, int], variant: str, build, **options) -> PSABlock:
        """PSANet's block for a point-wise-only variant (``structure: psanet``); reduction = ``psa_reduction``."""
        keep = {k: options[k] for k in ("branches", "chunk", "checkpoint", "precision") if k in options}
        return cls(channels, size, reduction=options.get("psa_reduction", 4), variant=variant, **keep)

    def extra_repr(self) -> str:
        return (
            f"variant={self.variant}, structure=psanet, channels={self.channels}, "
            f"reduced={self.reduced_channels}, size={self.size}, branches={self.branches}, precision={self.precision}"
        )

    def gates(self) -> list[nn.Parameter]:
        """None: this block does not start as the identity."""
        return []

    def _groups(self, x: Tensor) -> list[fused.Inputs]:
        """One attention per branch over E2 alone; the value is the reduced map z_b itself."""
        reduced = {b: self.reduce[b](x) for b in self.branches}
        value = torch.stack([reduced[b].flatten(2).transpose(1, 2) for b in self.branches], dim=1)
        relative = tuple(
            fused.Relative(i, b, self.predictors[b].features(reduced[b]), self.predictors[b].weight)
            for i, b in enumerate(self.branches)
        )
        return [fused.Inputs(value, relative=relative)]

    def _output(self, x: Tensor, agg: Tensor) -> Tensor:
        agg = agg.transpose(2, 3).reshape(x.shape[0], -1, *self.size)  # [o_collect, o_distribute]
        return self.fuse(torch.cat([x, self.proj(agg)], dim=1))
