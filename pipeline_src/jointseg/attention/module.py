"""The unified spatial attention block (SCIENCE.md section 2).

    y_i = x_i + BN(W_o [ sum_j A_b(i, j) W_v^b x_j ]_b)

with one attention A_b per branch b. Branches: PSANet's ``collect`` and
``distribute`` when E2 is a term, otherwise one ``content`` branch. A branch's
logits are the chosen terms (E1, E3, E4 are shared by all branches; E2 uses
the branch's own predictor F_b). ``combine`` says how terms become A:
``joint`` one softmax of their sum, ``sum`` the mean of one softmax per term,
``product`` the renormalised product of one softmax per term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from . import terms as T
from .psamask import num_offsets, relative_index, row_window_index

BRANCHES = ("collect", "distribute")
COMBINES = ("joint", "sum", "product")


def size_error(built: tuple[int, int], given: tuple[int, ...]) -> ValueError:
    """The one error message for a feature map of the wrong size."""
    return ValueError(
        f"attention module was built for feature size {built[0]}x{built[1]} but got "
        f"{given[0]}x{given[1]}; relative-position terms tie it to one size, so run "
        "inference with a sliding window at the training size"
    )


class NoAttention(nn.Identity):
    """Variant ``none``: the identity, kept as a module so models stay uniform."""

    variant = "none"

    def attention_map(self, x: Tensor, query: tuple[int, int]) -> Tensor:
        raise ValueError("attention variant 'none' has no attention map")


class RelativePredictor(nn.Module):
    """F of PSANet: 1x1 conv-BN-ReLU, then a 1x1 conv to M offset logits.

    The last conv is kept as weight/bias parameters and applied row-window-wise
    (terms.relative_logits), never as a full M-channel conv.
    """

    def __init__(self, channels: int, hidden: int, offsets: int) -> None:
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)
        )
        self.weight = nn.Parameter(torch.empty(offsets, hidden))
        self.bias = nn.Parameter(torch.zeros(offsets))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # as nn.Conv2d would


class JointAttention(nn.Module):
    """Spatial attention with score = sum of chosen terms E1..E4.

    Args:
        channels: C of the input map.
        size: (H, W) the module is built for (E2/E4 tie it to that size).
        terms: subset of ("E1", "E2", "E3", "E4").
        branches: E2 branches, subset of ("collect", "distribute").
        combine: "joint" | "sum" | "product".
        key_reduction: C' = C // key_reduction for theta/phi and F's hidden layer.
        value_reduction: value width C // value_reduction per branch (non-local: 2).
        chunk: queries per chunk (rounded to whole image rows) on the general path.
        checkpoint: recompute chunks in backward so peak memory is O(chunk * L).
    """

    def __init__(
        self,
        channels: int,
        size: tuple[int, int],
        terms: tuple[str, ...] = ("E1", "E2"),
        branches: tuple[str, ...] = ("collect",),
        combine: str = "joint",
        key_reduction: int = 2,
        value_reduction: int = 2,
        chunk: int = 512,
        checkpoint: bool = False,
        variant: str = "custom",
    ) -> None:
        super().__init__()
        terms = tuple(terms)
        bad = [t for t in terms if t not in T.TERMS]
        if not terms or bad:
            raise ValueError(f"terms must be a non-empty subset of {T.TERMS}, got {terms}")
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        if "E2" in terms and (not branches or any(b not in BRANCHES for b in branches)):
            raise ValueError(f"branches must be a non-empty subset of {BRANCHES}, got {branches}")
        self.variant = variant
        self.channels = channels
        self.size = (int(size[0]), int(size[1]))
        self.terms = terms
        self.branches = tuple(branches) if "E2" in terms else ("content",)
        self.combine = combine
        self.chunk = chunk
        self.checkpoint = checkpoint
        key_ch = max(channels // key_reduction, 1)
        value_ch = max(channels // value_reduction, 1)
        offsets = num_offsets(self.size)

        self.query = nn.Conv2d(channels, key_ch, 1) if "E1" in terms else None
        self.key = nn.Conv2d(channels, key_ch, 1) if {"E1", "E3"} & set(terms) else None
        self.key_vector = nn.Parameter(torch.zeros(key_ch)) if "E3" in terms else None  # u of E3
        self.position_bias = nn.Parameter(torch.zeros(offsets)) if "E4" in terms else None  # v of E4
        self.predictors = nn.ModuleDict(
            {b: RelativePredictor(channels, key_ch, offsets) for b in self.branches if b in BRANCHES}
        )
        self.value = nn.Conv2d(channels, value_ch * len(self.branches), 1)
        self.out = nn.Conv2d(value_ch * len(self.branches), channels, 1, bias=False)
        self.out_norm = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.out_norm.weight)  # block starts as the identity (non-local, DANet)
        # derived from size only: not in the state dict, rebuilt on construction
        self.register_buffer("rel_index", relative_index(self.size), persistent=False)
        self.register_buffer("window_index", row_window_index(self.size), persistent=False)

    def extra_repr(self) -> str:
        return (f"variant={self.variant}, channels={self.channels}, size={self.size}, "
                f"terms={self.terms}, branches={self.branches}, combine={self.combine}")

    # --- shared computations -------------------------------------------------
    def check_size(self, x: Tensor) -> None:
        if tuple(x.shape[-2:]) != self.size:
            raise size_error(self.size, tuple(x.shape[-2:]))

    def _features(self, x: Tensor) -> dict[str, Tensor]:
        """Per-position projections, computed once for all query rows."""
        n, _, h, w = x.shape
        feats: dict[str, Tensor] = {}
        if self.query is not None:
            feats["query"] = self.query(x).flatten(2).transpose(1, 2)  # (N, L, C')
        if self.key is not None:
            feats["key"] = self.key(x).flatten(2).transpose(1, 2)
        feats["value"] = self.value(x).view(n, len(self.branches), -1, h * w).transpose(2, 3)  # (N,B,L,Cv)
        for name, pred in self.predictors.items():
            hidden = pred.hidden(x).permute(0, 2, 3, 1)  # (N, H, W, C')
            if name == "collect":
                feats["collect"] = hidden
            else:
                # distribute: A_d(i, j) uses F_d(x_j)[i - j], the collect form with
                # i and j swapped, so every query needs every key's row: build the
                # full (N, L, L) matrix once (as PSANet's psamask does) and transpose.
                rows = torch.arange(h, device=x.device)
                full = T.relative_logits(hidden, pred.weight, pred.bias, rows, self.size,
                                         self.window_index)
                feats["distribute"] = full.transpose(1, 2)
        return feats

    def _term_logits(self, feats: dict[str, Tensor], branch: str, rows: Tensor) -> list[Tensor]:
        """The logits of each chosen term for the queries of ``rows``, (N, q, L) each."""
        qpos = T.query_positions(rows, self.size[1])
        out = []
        for term in self.terms:
            if term == "E1":
                out.append(T.content_logits(feats["query"], feats["key"], qpos))
            elif term == "E2":
                if branch == "collect":
                    pred = self.predictors["collect"]
                    out.append(T.relative_logits(feats["collect"], pred.weight, pred.bias, rows,
                                                 self.size, self.window_index))
                else:
                    out.append(feats["distribute"][:, qpos])
            elif term == "E3":
                out.append(T.key_logits(feats["key"], self.key_vector))
            else:
                out.append(T.position_logits(self.position_bias, self.rel_index, qpos))
        return out

    def _probabilities(self, feats: dict[str, Tensor], rows: Tensor) -> Tensor:
        """Attention probabilities (N, B, q, L) of the queries in image rows ``rows``."""
        probs = []
        for branch in self.branches:
            logits = self._term_logits(feats, branch, rows)
            if self.combine == "joint":
                total = logits[0]
                for extra in logits[1:]:
                    total = total + extra
                p = torch.softmax(total, dim=-1)
            elif self.combine == "sum":
                p = sum(torch.softmax(t, dim=-1) for t in logits) / len(logits)
            else:  # product of softmaxes, renormalised (mathematically = joint)
                p = torch.softmax(logits[0], dim=-1)
                for extra in logits[1:]:
                    p = p * torch.softmax(extra, dim=-1)
                p = p / p.sum(dim=-1, keepdim=True)
            # E3/E4 alone broadcast over queries or batch: make every slice explicit
            probs.append(p.expand(feats["value"].shape[0], rows.numel() * self.size[1], -1))
        return torch.stack(probs, dim=1)

    def _aggregate(self, feats: dict[str, Tensor], rows: Tensor) -> Tensor:
        """sum_j A(i, j) v_j for the queries of ``rows`` -> (N, B, q, Cv)."""
        return torch.matmul(self._probabilities(feats, rows), feats["value"])

    # --- public ---------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        self.check_size(x)
        n, _, h, w = x.shape
        feats = self._features(x)
        if self.terms == ("E1",):
            # self-attention alone: fused kernel, the L x L matrix never exists
            # contiguous: the CPU flash kernel needs unit stride on the channel dim,
            # otherwise SDPA silently falls back to the L x L math path
            agg = F.scaled_dot_product_attention(feats["query"][:, None].contiguous(),
                                                 feats["key"][:, None].contiguous(),
                                                 feats["value"].contiguous())
        else:
            rows_per_chunk = max(1, self.chunk // w)
            parts = []
            for start in range(0, h, rows_per_chunk):
                rows = torch.arange(start, min(h, start + rows_per_chunk), device=x.device)
                if self.checkpoint and torch.is_grad_enabled():
                    parts.append(checkpoint(self._aggregate, feats, rows, use_reentrant=False))
                else:
                    parts.append(self._aggregate(feats, rows))
            agg = torch.cat(parts, dim=2)
        agg = agg.transpose(2, 3).reshape(n, -1, h, w)  # (N, B*Cv, H, W), branch-major
        return x + self.out_norm(self.out(agg))

    def attention_map(self, x: Tensor, query: tuple[int, int]) -> Tensor:
        """Probabilities (N, B, H, W) of query position (h, w), one slice per branch."""
        self.check_size(x)
        qh, qw = int(query[0]), int(query[1])
        if not (0 <= qh < self.size[0] and 0 <= qw < self.size[1]):
            raise ValueError(f"query {query} outside the {self.size[0]}x{self.size[1]} grid")
        rows = torch.tensor([qh], device=x.device)
        probs = self._probabilities(self._features(x), rows)  # (N, B, W, L): the whole image row
        return probs[:, :, qw].reshape(x.shape[0], len(self.branches), *self.size)
