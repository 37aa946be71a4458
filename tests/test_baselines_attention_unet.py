"""Attention U-Net against its source: unet_CT_multi_att_dsv_3D and GridAttentionBlock2D of
ozan-oktay/Attention-Gated-Networks (models/networks/, models/layers/grid_attention_layer.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from baseline_helpers import layer_tokens, table_params

from jointseg.models import build_model, count_parameters
from jointseg.models.attention_unet import GridGate


def multi_att_dsv_table(in_channels: int = 3, n_classes: int = 2, feature_scale: int = 4) -> list[tuple]:
    """The network's layers in the order of ``__init__``, transcribed by hand (2-D form).

    UnetConv3(kernel 3, padding 1): 2 x [Conv(bias) - BN - ReLU]; UnetGridGatingSignal3:
    Conv 1x1 (bias) - BN - ReLU; GridAttentionBlock: W = [Conv 1x1 (bias), BN], theta
    (kernel = stride = sub-sample factor 2, no bias), phi (1x1, bias), psi (1x1 to 1, bias);
    MultiAttentionBlock: gate_block_1, gate_block_2, combine_gates = Conv 1x1 (bias) - BN -
    ReLU; UnetUp3_CT(in, out): UnetConv3(in + out, out) (its Upsample has no parameters);
    UnetDsv3: Conv 1x1 (bias); dsv1: Conv 1x1; final: Conv(4 * n_classes, n_classes, 1).
    Max-pools and up-sampling have no parameters and are left out.
    """
    filters = [int(x / feature_scale) for x in (64, 128, 256, 512, 1024)]
    rows: list[tuple] = []

    def unet_conv(cin: int, cout: int) -> None:
        rows.extend([("conv", cin, cout, 3, 1, 1, True), ("bn", cout), ("relu",)])
        rows.extend([("conv", cout, cout, 3, 1, 1, True), ("bn", cout), ("relu",)])

    def gate(cin: int, gating: int, inter: int) -> None:
        rows.extend([("conv", cin, cin, 1, 1, 0, True), ("bn", cin)])  # W
        rows.append(("conv", cin, inter, 2, 2, 0, False))  # theta
        rows.append(("conv", gating, inter, 1, 1, 0, True))  # phi
        rows.append(("conv", inter, 1, 1, 1, 0, True))  # psi

    def multi_attention(in_size: int, gate_size: int, inter_size: int) -> None:
        gate(in_size, gate_size, inter_size)
        gate(in_size, gate_size, inter_size)
        rows.extend([("conv", 2 * in_size, in_size, 1, 1, 0, True), ("bn", in_size), ("relu",)])

    unet_conv(in_channels, filters[0])  # conv1
    unet_conv(filters[0], filters[1])  # conv2
    unet_conv(filters[1], filters[2])  # conv3
    unet_conv(filters[2], filters[3])  # conv4
    unet_conv(filters[3], filters[4])  # center
    rows.extend([("conv", filters[4], filters[4], 1, 1, 0, True), ("bn", filters[4]), ("relu",)])  # gating
    multi_attention(filters[1], filters[2], filters[1])  # attentionblock2
    multi_attention(filters[2], filters[3], filters[2])  # attentionblock3
    multi_attention(filters[3], filters[4], filters[3])  # attentionblock4
    unet_conv(filters[4] + filters[3], filters[3])  # up_concat4
    unet_conv(filters[3] + filters[2], filters[2])  # up_concat3
    unet_conv(filters[2] + filters[1], filters[1])  # up_concat2
    unet_conv(filters[1] + filters[0], filters[0])  # up_concat1
    for width in (filters[3], filters[2], filters[1], filters[0]):  # dsv4, dsv3, dsv2, dsv1
        rows.append(("conv", width, n_classes, 1, 1, 0, True))
    rows.append(("conv", 4 * n_classes, n_classes, 1, 1, 0, True))  # final
    return rows


def test_paper_preset_is_the_source_layer_by_layer():
    model = build_model("attention_unet", "paper", attention="none")
    assert layer_tokens(model) == multi_att_dsv_table()
    assert count_parameters(model) == table_params(multi_att_dsv_table()) == 2_379_344


def test_small_preset_is_the_same_network_at_feature_scale_16():
    model = build_model("attention_unet", "small", attention="none")
    assert layer_tokens(model) == multi_att_dsv_table(feature_scale=16)
    assert count_parameters(model) == table_params(multi_att_dsv_table(feature_scale=16))


def source_gate(gate: GridGate, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """_GridAttentionBlockND._concatenation, transcribed (F.upsample = F.interpolate, align_corners False)."""
    theta_x = gate.theta(x)
    phi_g = F.interpolate(gate.phi(g), size=theta_x.shape[2:], mode="bilinear")
    f = F.relu(theta_x + phi_g)
    sigm_psi_f = torch.sigmoid(gate.psi(f))
    sigm_psi_f = F.interpolate(sigm_psi_f, size=x.shape[2:], mode="bilinear")
    y = sigm_psi_f.expand_as(x) * x
    return gate.W(y), sigm_psi_f


def test_grid_gate_is_the_concatenation_mode():
    torch.manual_seed(0)
    gate = GridGate(channels=6, gating=10, inter=6).eval()
    x, g = torch.randn(2, 6, 16, 12), torch.randn(2, 10, 4, 3)  # g one level coarser than theta's 8x6 grid
    out, att = gate(x, g)
    ref_out, ref_att = source_gate(gate, x, g)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(att, ref_att)
    assert att.shape == (2, 1, 16, 12) and bool(((att > 0) & (att < 1)).all())


@pytest.mark.parametrize("size", [(16, 16), (48, 80)])
def test_forward_shapes_and_init(size):
    torch.manual_seed(0)
    model = build_model("attention_unet", "small", attention="none", num_classes=3, input_size=size)
    assert model.eval()(torch.randn(2, 3, *size)).shape == (2, 3, *size)
    bn = model.conv1.conv1[1]  # init_weights(kaiming): BN weight ~ N(1, 0.02), bias 0
    weight = bn.weight.detach()
    assert 0.9 < float(weight.min()) and float(weight.max()) < 1.1 and int(torch.count_nonzero(bn.bias)) == 0


def test_refuses_attention_and_sizes_it_cannot_take():
    with pytest.raises(ValueError, match="takes no attention variant"):
        build_model("attention_unet", "small", attention="self")
    with pytest.raises(ValueError, match="divisible by 16"):
        build_model("attention_unet", "small", attention="none", input_size=(24, 64))
