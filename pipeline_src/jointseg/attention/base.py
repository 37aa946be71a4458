"""What every attention block shares: the size tie, the identity, fused aggregation, the precision policy.

Precision (``precision``, the study's ``model.attention_options.precision``):

- ``"fp32"`` (default): inside an autocast region the block runs as an fp32
  island, its input upcast and autocast off: projections, logits, softmax and
  aggregation in fp32, forward and backward, so its output and maps equal an
  fp32 run's for the same input. Outside autocast nothing changes.
- ``"autocast"``: the block follows autocast (its 1x1 projections in the
  autocast dtype, the fused attention in that dtype with an fp32 softmax).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import fused

PRECISIONS = ("fp32", "autocast")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of PRECISIONS, else a ValueError naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"attention precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def in_fp32_island(precision: str, x: Tensor) -> bool:
    """Whether a block with ``precision`` must leave the autocast region ``x`` is in."""
    return precision == "fp32" and torch.is_autocast_enabled(x.device.type)


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

    def gates(self) -> list[nn.Parameter]:
        """No parameters, hence no gates."""
        return []

    def attention_map(self, x: Tensor, query: tuple[int, int]) -> Tensor:
        raise ValueError("attention variant 'none' has no attention map")


class FusedAttentionBlock(nn.Module):
    """A block whose attention is the mean of one or more fused attentions (fused.py).

    Subclasses set ``size``, ``branches``, ``chunk``, ``checkpoint``, ``precision`` and define
    ``_groups(x)`` (one ``fused.Inputs`` per softmax whose probabilities are
    averaged; a single one for a joint softmax) and ``_output(x, agg)`` with
    agg (N, B, L, Cv), the attended values of each branch.
    """

    size: tuple[int, int]
    branches: tuple[str, ...]
    chunk: int
    checkpoint: bool
    precision: str = "fp32"

    def _groups(self, x: Tensor) -> list[fused.Inputs]:
        raise NotImplementedError

    def _output(self, x: Tensor, agg: Tensor) -> Tensor:
        raise NotImplementedError

    def check_size(self, x: Tensor) -> None:
        """Raise the size error unless x is (N, C, H, W) at the built size."""
        if tuple(x.shape[-2:]) != self.size:
            raise size_error(self.size, tuple(x.shape[-2:]))

    def forward(self, x: Tensor) -> Tensor:
        self.check_size(x)
        if in_fp32_island(self.precision, x):
            with torch.autocast(x.device.type, enabled=False):
                return self._attend(x.float())
        return self._attend(x)

    def _attend(self, x: Tensor) -> Tensor:
        # checkpoint: recompute each chunk's logits in backward, peak memory O(chunk * L)
        outs = [fused.attend(g, self.size, self.chunk, self.checkpoint) for g in self._groups(x)]
        return self._output(x, outs[0] if len(outs) == 1 else torch.stack(outs).mean(0))

    def attention_map(self, x: Tensor, query: tuple[int, int]) -> Tensor:
        """Probabilities (N, B, H, W) of query position (h, w), one slice per branch; fp32."""
        self.check_size(x)
        if in_fp32_island(self.precision, x):
            with torch.autocast(x.device.type, enabled=False):
                return self._map(x.float(), query)
        return self._map(x, query)

    def _map(self, x: Tensor, query: tuple[int, int]) -> Tensor:
        qh, qw = int(query[0]), int(query[1])
        if not (0 <= qh < self.size[0] and 0 <= qw < self.size[1]):
            raise ValueError(f"query {query} outside the {self.size[0]}x{self.size[1]} grid")
        # the logits of the forward pass, for the whole image row qh: (N, B, W, L)
        probs = [torch.softmax(fused.logits(g, self.size, qh), dim=-1) for g in self._groups(x)]
        mean = probs[0] if len(probs) == 1 else torch.stack(probs).mean(0)
        return mean[:, :, qw].reshape(x.shape[0], len(self.branches), *self.size)
