"""Sliding-window inference and validation Dice against MONAI, whose definitions they follow."""

import numpy as np
import pytest
import torch
from monai.inferers import sliding_window_inference
from monai.metrics import compute_dice
from monai.networks.utils import one_hot

from jointseg.evaluation.metrics import case_dice
from jointseg.models.sliding_window import sliding_probabilities

CPU = torch.device("cpu")


def test_an_image_of_the_window_size_gives_monai_probabilities():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3))
    model = torch.nn.Sequential(model, torch.nn.Upsample(size=(24, 20)))  # any network of a fixed output size
    x = torch.randn(11, 2, 24, 20)
    ours = sliding_probabilities(model, x, (24, 20), CPU, sw_batch_size=4, chunk=5)
    with torch.no_grad():
        logits = sliding_window_inference(x, (24, 20), 4, model, overlap=0.25, mode="gaussian")
    assert torch.allclose(ours, torch.softmax(logits, 1), atol=1e-6)
    assert torch.equal(ours.argmax(1), torch.softmax(logits, 1).argmax(1))


@pytest.mark.parametrize("shape", [(30, 26), (6, 14, 12)])
def test_case_dice_equals_monai_compute_dice(shape):
    rng = np.random.default_rng(len(shape))
    for _ in range(5):
        pred = rng.integers(0, 4, shape)
        ref = rng.integers(0, 4, shape)
        pred[pred == 3] = 0  # class 3 absent from the prediction
        p, g = (torch.as_tensor(a)[None, None] for a in (pred, ref))
        expected = compute_dice(
            one_hot(p, 4, dim=1), one_hot(g, 4, dim=1), include_background=False, ignore_empty=False
        )
        assert np.allclose(case_dice(pred, ref, 4), expected[0].numpy(), atol=1e-6)
    empty = np.zeros(shape, np.int64)
    assert case_dice(empty, empty, 3).tolist() == [1.0, 1.0]  # both empty -> 1 (policy)
