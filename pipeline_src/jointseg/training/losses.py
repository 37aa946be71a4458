"""Training losses, chosen by ``train.loss``.

``ce``: plain softmax cross-entropy, the loss of the paper author's earlier
DenseUNet code (the paper's recipe).

``ce_dice``: our choice, softmax cross-entropy plus soft Dice, both weighted 1,
with the definitions of MONAI's ``DiceCELoss(include_background=False,
to_onehot_y=True, softmax=True, batch=True)`` (smoothing 1e-5 in numerator and
denominator). It is written here in a few torch lines because importing MONAI
costs seconds in every training job; the tests check value and gradient
against MONAI's class. Why Dice on top of cross-entropy: the
foreground is small (a hippocampus is ~1 % of an MRI slice, many slices have
none; small skin lesions likewise), so pixel-averaged CE is dominated by
background and learns to under-segment; the Dice term is normalised per class
and rewards overlap regardless of object size. Dice is computed over the whole
batch (``batch=True``) and without the background class, so a crop without any
foreground does not produce a degenerate per-image Dice.

Both compute in fp32 whatever the logits' dtype (bf16 or fp16 under autocast):
an fp16 loss overflows in backward, where the GradScaler's first scale (2^16)
already exceeds fp16's largest value, so every such step would be skipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOSSES = ("ce", "ce_dice")
SMOOTH = 1e-5  # MONAI DiceLoss's smooth_nr and smooth_dr


class CELoss(nn.Module):
    """Plain softmax cross-entropy on ``(N, K, H, W)`` logits and ``(N, H, W)`` indices, in fp32."""

    def __init__(self) -> None:
        super().__init__()
        self.ce = nn.CrossEntropyLoss()

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.ce(logits.float(), target)


class CEDiceLoss(nn.Module):
    """Cross-entropy + soft Dice (MONAI ``DiceCELoss``'s definitions) on ``(N, K, H, W)`` logits, ``(N, H, W)`` indices.

    Dice per foreground class over the whole batch, ``1 - (2 sum(p g) + s) / (sum(p) + sum(g) + s)``,
    with ``p`` the softmax over all K classes; the loss adds the mean over classes to the CE.
    """

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = logits.float()  # sums over a batch of bf16 probabilities lose digits
        probs = torch.softmax(logits, dim=1)[:, 1:]
        truth = F.one_hot(target, logits.shape[1]).movedim(-1, 1)[:, 1:].to(probs.dtype)
        dims = (0, *range(2, probs.ndim))  # batch and space: one Dice per class
        overlap = (probs * truth).sum(dims)
        total = probs.sum(dims) + truth.sum(dims)
        dice = 1.0 - (2.0 * overlap + SMOOTH) / (total + SMOOTH)
        return F.cross_entropy(logits, target) + dice.mean()


def build_loss(name: str) -> nn.Module:
    """The loss ``train.loss`` names: ``ce`` or ``ce_dice``."""
    if name == "ce":
        return CELoss()
    if name == "ce_dice":
        return CEDiceLoss()
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
