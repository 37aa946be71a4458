"""Training losses, chosen by ``train.loss``.

``ce``: plain softmax cross-entropy, the loss of the paper author's earlier
DenseUNet code (the paper's recipe).

``ce_dice``: our choice, softmax cross-entropy plus soft Dice (MONAI
``DiceCELoss``), both weighted 1. Why Dice on top of cross-entropy: the
foreground is small (a hippocampus is ~1 % of an MRI slice, many slices have
none; small skin lesions likewise), so pixel-averaged CE is dominated by
background and learns to under-segment; the Dice term is normalised per class
and rewards overlap regardless of object size. Dice is computed over the whole
batch (``batch=True``) and without the background class, so a crop without any
foreground does not produce a degenerate per-image Dice.
"""

from __future__ import annotations

from torch import Tensor, nn

LOSSES = ("ce", "ce_dice")


class CELoss(nn.Module):
    """Plain softmax cross-entropy on ``(N, K, H, W)`` logits and ``(N, H, W)`` indices."""

    def __init__(self) -> None:
        super().__init__()
        self.ce = nn.CrossEntropyLoss()

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.ce(logits, target)


class CEDiceLoss(nn.Module):
    """MONAI DiceCELoss on ``(N, K, H, W)`` logits and ``(N, H, W)`` class indices."""

    def __init__(self) -> None:
        super().__init__()
        from monai.losses import DiceCELoss

        self.loss = DiceCELoss(
            include_background=False, to_onehot_y=True, softmax=True, batch=True, lambda_dice=1.0, lambda_ce=1.0
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        # Dice in fp32 even under autocast: sums over a batch of probabilities in bf16 lose digits.
        return self.loss(logits.float(), target.unsqueeze(1))


def build_loss(name: str) -> nn.Module:
    """The loss ``train.loss`` names: ``ce`` or ``ce_dice``."""
    if name == "ce":
        return CELoss()
    if name == "ce_dice":
        return CEDiceLoss()
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
