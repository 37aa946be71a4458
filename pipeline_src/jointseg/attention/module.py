"""The unified spatial attention block (structure ``"unified"``).

    y_i = x_i + BN(W_o [ sum_j A_b(i, j) W_v^b x_j ]_b)

with one attention A_b per branch b. Branches: PSANet's ``collect`` and
``distribute`` when E2 is a term, otherwise one ``content`` branch. A branch's
logits are the chosen terms (E1, E3, E4 are shared by all branches; E2 uses
the branch's own predictor F_b, see predictor.py). ``combine`` says how terms
become A: ``joint`` one softmax of their sum, ``sum`` the mean of one softmax
per term. (A renormalised product of softmaxes is not offered: it equals
``joint`` exactly, since exp(a) exp(b) = exp(a + b).)
The BN's scale starts at zero, so the block starts as the identity (as in
non-local blocks and DANet). Every softmax runs through ``fused.attend``: E1
(and E3) alone on PyTorch's scaled_dot_product_attention, anything with E2 or
E4 on the chunked fused function; neither builds an L x L matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import fused
from . import terms as T
from .base import FusedAttentionBlock, check_precision
from .predictor import BRANCHES, RelativePredictor
from .psamask import num_offsets

COMBINES = ("joint", "sum")


class JointAttention(FusedAttentionBlock):
    """Spatial attention with score = sum of chosen terms E1..E4.

    Args:
        channels: C of the input map.
        size: (H, W) the module is built for (E2/E4 tie it to that size).
        terms: subset of ("E1", "E2", "E3", "E4").
        branches: E2 branches, subset of ("collect", "distribute").
        combine: "joint" | "sum".
        e1_scale: "none" (non-local's embedded Gaussian) | "sqrt" (1/sqrt(C')).
        key_reduction: C' = C // key_reduction for theta/phi and F's hidden layer.
        value_reduction: value width C // value_reduction per branch (non-local: 2).
        chunk: queries per chunk (rounded to whole image rows) of the fused path.
        checkpoint: recompute each chunk's logits in backward, so the peak memory is
            O(chunk * L); off: keep the probabilities (O(L^2), no recomputation).
        precision: "fp32" (default: fp32 inside autocast too) | "autocast" (follow it); base.py.
    """

    def __init__(
        self,
        channels: int,
        size: tuple[int, int],
        terms: tuple[str, ...] = ("E1", "E2"),
        branches: tuple[str, ...] = BRANCHES,
        combine: str = "joint",
        e1_scale: str = "none",
        key_reduction: int = 2,
        value_reduction: int = 2,
        chunk: int = 512,
        checkpoint: bool = True,
        variant: str = "custom",
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        self.precision = check_precision(precision)
        terms = tuple(terms)
        bad = [t for t in terms if t not in T.TERMS]
        if not terms or bad:
            raise ValueError(f"terms must be a non-empty subset of {T.TERMS}, got {terms}")
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        if "E2" in terms and (not branches or any(b not in BRANCHES for b in branches)):
            raise ValueError(f"branches must be a non-empty subset of {BRANCHES}, got {branches}")
        self.variant, self.channels, self.terms, self.combine = variant, channels, terms, combine
        self.size = (int(size[0]), int(size[1]))
        self.branches = tuple(branches) if "E2" in terms else ("content",)
        self.chunk, self.checkpoint, self.e1_scale = chunk, checkpoint, e1_scale
        key_ch = max(channels // key_reduction, 1)
        value_ch = max(channels // value_reduction, 1)
        self.e1_factor = T.e1_factor(e1_scale, key_ch)

        self.query = nn.Conv2d(channels, key_ch, 1) if "E1" in terms else None
        self.key = nn.Conv2d(channels, key_ch, 1) if {"E1", "E3"} & set(terms) else None
        self.key_vector = nn.Parameter(torch.zeros(key_ch)) if "E3" in terms else None  # u of E3
        # v of E4: the only per-offset parameter besides F's weight
        self.position_bias = nn.Parameter(torch.zeros(num_offsets(self.size))) if "E4" in terms else None
        self.predictors = nn.ModuleDict(
            {b: RelativePredictor(channels, key_ch, self.size, b) for b in self.branches if b in BRANCHES}
        )
        self.value = nn.Conv2d(channels, value_ch * len(self.branches), 1)
        self.out = nn.Conv2d(value_ch * len(self.branches), channels, 1, bias=False)
        self.out_norm = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.out_norm.weight)  # block starts as the identity (non-local, DANet)

    @classmethod
    def from_options(cls, channels: int, size: tuple[int, int], variant: str, build, **options) -> JointAttention:
        """The unified block of a variant's term set (``build``: the registry's builder, unused here)."""
        if "terms" not in options:
            raise ValueError(f"variant {variant!r} needs terms=(...), e.g. terms=('E1', 'E2', 'E3', 'E4')")
        options = {k: v for k, v in options.items() if k not in ("structure", "psa_reduction")}
        return cls(channels, size, variant=variant, **options)

    def extra_repr(self) -> str:
        return (
            f"variant={self.variant}, channels={self.channels}, size={self.size}, terms={self.terms}, "
            f"branches={self.branches}, combine={self.combine}, e1_scale={self.e1_scale}, precision={self.precision}"
        )

    def gates(self) -> list[nn.Parameter]:
        """The zero-initialised scales that make the block start as the identity."""
        return [self.out_norm.weight]

    def _groups(self, x: Tensor) -> list[fused.Inputs]:
        """One fused attention for ``joint``; one per term, averaged, for ``sum``."""
        n, _, h, w = x.shape
        proj = self._projections(x)
        for branch, pred in self.predictors.items():
            proj[branch] = pred.features(x)  # (N, H, W, C')
        if self.position_bias is not None:  # E4 is a collect term of constant features 1
            proj["ones"] = x.new_ones(n, h, w, 1)
        sets = [self.terms] if self.combine == "joint" else [(t,) for t in self.terms]
        return [self._inputs(terms, proj) for terms in sets]

    def _inputs(self, terms: tuple[str, ...], proj: dict[str, Tensor]) -> fused.Inputs:
        """The fused attention of the sum of ``terms``."""
        query, scale = (proj["query"], self.e1_factor) if "E1" in terms else (None, 1.0)
        if "E3" in terms:  # u^T phi_j joins E1 as (f theta_i + u)^T phi_j
            u = self.key_vector.expand_as(proj["key"])
            query, scale = (u if query is None else query * scale + u), 1.0
        relative = []
        for b, branch in enumerate(self.branches):
            if "E2" in terms:
                relative.append(fused.Relative(b, branch, proj[branch], self.predictors[branch].weight))
            if "E4" in terms:  # v_{j-i}: the offset table seen from the query, like collect
                relative.append(fused.Relative(b, "collect", proj["ones"], self.position_bias[:, None]))
        key = proj["key"] if query is not None else None
        return fused.Inputs(proj["value"], query, key, scale, tuple(relative))

    def _projections(self, x: Tensor) -> dict[str, Tensor]:
        """query, key (N, L, C') and value (N, B, L, Cv): the 1x1 convs as one matmul over positions."""
        convs = {name: conv for name in ("query", "key", "value") if (conv := getattr(self, name)) is not None}
        weight = torch.cat([c.weight.flatten(1) for c in convs.values()])
        bias = torch.cat([c.bias for c in convs.values()])
        y = F.linear(x.flatten(2).transpose(1, 2), weight, bias)  # (N, L, sum of widths)
        proj = dict(zip(convs, y.split([c.out_channels for c in convs.values()], dim=-1)))
        proj["value"] = proj["value"].unflatten(-1, (len(self.branches), -1)).transpose(1, 2)
        return proj

    def _output(self, x: Tensor, agg: Tensor) -> Tensor:
        """x + BN(W_o [o_b]_b): the output 1x1 conv as a matmul over positions, BN channels-last."""
        y = F.linear(agg.transpose(1, 2).flatten(2), self.out.weight.flatten(1))  # (N, L, C)
        return x + self.out_norm(y.transpose(1, 2).unflatten(2, self.size))
