"""TensorFlow 'SAME' padding for strided convs and pools (DACN is TensorFlow code).

TF pads a strided op so that the output has ceil(s / stride) rows and puts the
odd extra row at the bottom/right: a 3x3 stride-2 op on an even size pads 0
before and 1 after, so its windows start at rows 0, 2, 4, ... PyTorch's
symmetric ``padding=1`` gives the same output size but windows shifted by one
row (starting at -1, 1, 3, ...). TF's average pooling also divides by the
number of in-image values of a window, never by the padded window size.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF 'SAME' for one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: Tensor, kernel: int, stride: int, value: float = 0.0) -> Tensor:
    """Pad the last two dimensions of ``x`` as TF 'SAME' does before a ``kernel``/``stride`` op."""
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    return F.pad(x, (left, right, top, bottom), value=value)


class SamePad2d(nn.Module):
    """Zero padding of TF 'SAME' for a following unpadded ``kernel``/``stride`` conv."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return pad_same(x, self.kernel, self.stride)


class SamePool2d(nn.Module):
    """3x3 (``kernel``) stride-2 max or average pooling with TF 'SAME' padding.

    Max pooling never lets padding win; average pooling divides each window's
    sum by its count of in-image values, as TF does. Both are one native op:
    with ``kernel`` = 2 * ``stride`` - 1 = 3, TF pads an even size (0, 1) and an
    odd one (1, 1); PyTorch's ``padding`` = size % 2 with ``ceil_mode`` gives
    the same windows (a trailing window clipped at the edge stands for the
    bottom/right pad), padding that never enters a max, and, with
    ``count_include_pad=False``, the in-image divisor - bit-identical to
    padding explicitly (tests/test_models.py), without a padded copy per call.
    """

    def __init__(self, mode: str, kernel: int = 3, stride: int = 2) -> None:
        super().__init__()
        if mode not in ("max", "avg"):
            raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
        if (kernel, stride) != (3, 2):
            raise ValueError(
                f"only TF 'SAME' 3x3 stride-2 pools are implemented, got {kernel}x{kernel} stride {stride}"
            )
        self.mode, self.kernel, self.stride = mode, kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        k, s = self.kernel, self.stride
        pad = (x.shape[-2] % 2, x.shape[-1] % 2)
        if self.mode == "max":
            return F.max_pool2d(x, k, s, padding=pad, ceil_mode=True)
        return F.avg_pool2d(x, k, s, padding=pad, ceil_mode=True, count_include_pad=False)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, kernel={self.kernel}, stride={self.stride}, padding='SAME'"
