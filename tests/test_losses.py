"""The training losses against MONAI's DiceCELoss, the definition ``ce_dice`` follows."""

import pytest
import torch
from monai.losses import DiceCELoss

from jointseg.training.losses import CEDiceLoss, build_loss


@pytest.mark.parametrize("classes,shape", [(2, (4, 16, 16)), (3, (3, 20, 12)), (4, (2, 6, 8, 8))])
def test_ce_dice_equals_monai_value_and_gradient(classes, shape):
    gen = torch.Generator().manual_seed(classes)
    logits = torch.randn(shape[0], classes, *shape[1:], generator=gen, dtype=torch.float64) * 3
    target = torch.randint(0, classes, shape, generator=gen)
    target[0] = 0  # one sample without foreground
    ours_in = logits.clone().requires_grad_(True)
    monai_in = logits.clone().requires_grad_(True)
    ours = CEDiceLoss()(ours_in, target)
    ref = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True)(
        monai_in.float(), target.unsqueeze(1)
    )
    ours.backward()
    ref.backward()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(ours_in.grad, monai_in.grad, rtol=1e-4, atol=1e-7)
    assert ours.item() > 0.1  # random logits are far from the target


def test_ce_dice_is_small_for_a_confident_correct_prediction_and_unknown_names_fail():
    target = torch.zeros(2, 8, 8, dtype=torch.int64)
    target[:, 2:5, 2:5] = 1
    logits = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float() * 20
    assert build_loss("ce_dice")(logits, target).item() < 1e-3
    with pytest.raises(ValueError, match="ce_dice"):
        build_loss("dice")
