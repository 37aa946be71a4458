"""UNet++ against its source: Nest_Net in MrGiovanni/UNetPlusPlus, model.py at commit 3e68792."""

from __future__ import annotations

import pytest
import torch
from baseline_helpers import layer_tokens, table_params

from jointseg.models import build_model, count_parameters
from jointseg.models.unet_pp import UNetPlusPlus

NEST_NET_PRINTED_TOTAL = 9_041_601  # the docstring above Nest_Net: "Total params: 9,041,601" (1 channel, 1 class)


def nest_net_table(color_type: int = 3, num_class: int = 2, nb_filter=(32, 64, 128, 256, 512)) -> list[tuple]:
    """Nest_Net's layers in the order of its body, transcribed by hand.

    standard_unit = Conv2D(3x3, relu, 'same', bias) - Dropout(0.5) - Conv2D - Dropout;
    Conv2DTranspose(nb_filter[i], (2, 2), strides=(2, 2), 'same') has a bias;
    the head is Conv2D(num_class, (1, 1)) on conv1_5 (deep_supervision=False:
    output_1..3 are not in the model).
    """
    rows: list[tuple] = []

    def unit(cin: int, c: int) -> None:  # standard_unit
        rows.extend([("conv", cin, c, 3, 1, 1, True), ("relu",), ("dropout", 0.5)])
        rows.extend([("conv", c, c, 3, 1, 1, True), ("relu",), ("dropout", 0.5)])

    def up(cin: int, c: int) -> None:  # Conv2DTranspose
        rows.append(("deconv", cin, c, 2, 2, True))

    f = nb_filter
    unit(color_type, f[0])  # conv1_1
    unit(f[0], f[1])  # conv2_1 (after pool1)
    up(f[1], f[0])  # up1_2
    unit(2 * f[0], f[0])  # conv1_2 = [up1_2, conv1_1]
    unit(f[1], f[2])  # conv3_1
    up(f[2], f[1])  # up2_2
    unit(2 * f[1], f[1])  # conv2_2 = [up2_2, conv2_1]
    up(f[1], f[0])  # up1_3
    unit(3 * f[0], f[0])  # conv1_3 = [up1_3, conv1_1, conv1_2]
    unit(f[2], f[3])  # conv4_1
    up(f[3], f[2])  # up3_2
    unit(2 * f[2], f[2])  # conv3_2
    up(f[2], f[1])  # up2_3
    unit(3 * f[1], f[1])  # conv2_3
    up(f[1], f[0])  # up1_4
    unit(4 * f[0], f[0])  # conv1_4
    unit(f[3], f[4])  # conv5_1
    up(f[4], f[3])  # up4_2
    unit(2 * f[3], f[3])  # conv4_2
    up(f[3], f[2])  # up3_3
    unit(3 * f[2], f[2])  # conv3_3
    up(f[2], f[1])  # up2_4
    unit(4 * f[1], f[1])  # conv2_4
    up(f[1], f[0])  # up1_5
    unit(5 * f[0], f[0])  # conv1_5
    rows.append(("conv", f[0], num_class, 1, 1, 0, True))  # nestnet_output_4 (softmax head here)
    return rows


def test_paper_preset_is_nest_net_layer_by_layer():
    model = build_model("unet_pp", "paper", attention="none", input_size=(96, 96))
    assert layer_tokens(model) == nest_net_table()
    assert count_parameters(model) == table_params(nest_net_table()) == 9_042_210


def test_count_matches_the_sources_printed_total():
    source = nest_net_table(color_type=1, num_class=1)
    assert table_params(source) == NEST_NET_PRINTED_TOTAL
    assert count_parameters(UNetPlusPlus("paper", in_channels=1, num_classes=1)) == NEST_NET_PRINTED_TOTAL


def test_small_preset_is_the_same_topology_at_a_quarter_width():
    model = build_model("unet_pp", "small", attention="none")
    assert layer_tokens(model) == nest_net_table(nb_filter=(8, 16, 32, 64, 128))


@pytest.mark.parametrize("size", [(16, 16), (48, 80)])
def test_forward_shapes_and_keras_init(size):
    torch.manual_seed(0)
    model = build_model("unet_pp", "small", attention="none", num_classes=3, input_size=size).eval()
    assert model(torch.randn(2, 3, *size)).shape == (2, 3, *size)
    conv = model.layers["conv1_2"][0]  # he_normal: std sqrt(2 / fan_in) before truncation at 2 sd
    bound = 2 * (2 / (conv.in_channels * 9)) ** 0.5
    assert float(conv.weight.detach().abs().max()) <= bound and int(torch.count_nonzero(conv.bias)) == 0


def test_refuses_attention_and_sizes_it_cannot_take():
    with pytest.raises(ValueError, match="takes no attention variant"):
        build_model("unet_pp", "small", attention="joint")
    with pytest.raises(ValueError, match="divisible by 16"):
        build_model("unet_pp", "small", attention="none", input_size=(64, 72))
    model = build_model("unet_pp", "small", attention="none")
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 3, 40, 64))
