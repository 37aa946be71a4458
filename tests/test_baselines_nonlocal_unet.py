"""Non-local U-Net against its source: divelab/Non-local-U-Nets network.py, utils/attention.py,
utils/basic_ops.py and configure.py (TensorFlow, 3-D; here its 2-D form)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from baseline_helpers import layer_tokens, table_params

from jointseg.models import build_model, count_parameters
from jointseg.models.nonlocal_unet import GlobalAggregation, NonLocalUNet, TFDeconv


def network_table(in_channels: int = 3, num_classes: int = 2, depth: int = 3, f: int = 32) -> list[tuple]:
    """Network._build_network's layers in the order TF creates them, transcribed by hand.

    Conv3D/Deconv3D: no bias, 'same'; a stride-2 3x3 conv pads at the end ("same"
    here), stride 1 pads 1, a 1x1 conv none. BN_ReLU = batch_normalization + relu6.
    _residual_block: BN_ReLU, projection_shortcut (first block of an encoding layer:
    1x1 conv with the layer's stride), conv 3x3 (stride), BN_ReLU, conv 3x3.
    multihead_attention_3d (the token ("attention", heads, dropout) stands for it):
    q (1x1, bias; 'UP': Deconv3D 3x3 stride 2 with bias), k, v (1x1, bias), output 1x1 (bias).
    """
    rows: list[tuple] = []

    def bn_relu(c: int) -> None:
        rows.extend([("bn", c), ("relu6",)])

    def residual(cin: int, c: int, stride: int, project: bool) -> None:
        bn_relu(cin)
        if project:
            rows.append(("conv", cin, c, 1, stride, 0, False))
        rows.append(("conv", cin, c, 3, stride, 1 if stride == 1 else "same", False))
        bn_relu(c)
        rows.append(("conv", c, c, 3, 1, 1, False))

    def attention(cin: int, c: int, heads: int, up: bool) -> None:
        rows.append(("attention", heads, 0.5))  # dot_product_attention(..., dropout_rate=0.5)
        rows.append(("deconv", cin, c, 3, 2, True) if up else ("conv", cin, c, 1, 1, 0, True))  # q
        rows.extend([("conv", cin, c, 1, 1, 0, True), ("conv", cin, c, 1, 1, 0, True)])  # k, v
        rows.append(("conv", c, c, 1, 1, 0, True))  # output_filters

    rows.append(("conv", in_channels, f, 3, 1, 1, False))  # initial_conv
    widths = [f * 2**i for i in range(depth)]
    strides = [1] + [2] * (depth - 1)
    cin = f
    for i in range(depth):  # _encoding_block_layer
        residual(cin, widths[i], strides[i], project=True)
        cin = widths[i]
    bn_relu(widths[-1])
    attention(widths[-1], widths[-1], heads=2, up=False)  # + skip_inputs[-1]
    for i in reversed(range(depth - 1)):
        if i == depth - 2:  # _att_decoding_block_layer
            bn_relu(widths[i + 1])
            rows.append(("deconv", widths[i + 1], widths[i], 3, 2, False))  # projection_shortcut
            attention(widths[i + 1], widths[i], heads=1, up=True)
        else:  # _decoding_block_layer
            rows.append(("deconv", widths[i + 1], widths[i], 3, 2, False))
        residual(widths[i], widths[i], 1, project=False)  # + skip, then one residual block
    bn_relu(f)  # _output_block_layer
    rows.extend([("dropout", 0.5), ("conv", f, num_classes, 1, 1, 0, True)])
    return rows


def test_paper_preset_is_the_source_layer_by_layer():
    model = build_model("nonlocal_unet", "paper", attention="none")
    assert layer_tokens(model) == network_table()
    assert count_parameters(model) == table_params(network_table()) == 653_602


def test_small_preset_and_other_depths():
    assert layer_tokens(build_model("nonlocal_unet", "small", attention="none")) == network_table(f=8)
    deeper = NonLocalUNet("small", depth=4, input_size=(32, 32))
    assert layer_tokens(deeper) == network_table(depth=4, f=8)


def test_tf_deconv_is_the_gradient_of_a_same_conv():
    """TF's conv_transpose is the input gradient of a 'SAME' stride-2 conv (padding all at the end)."""
    torch.manual_seed(0)
    deconv = TFDeconv(3, 2)
    y = torch.randn(1, 3, 4, 5)
    x = torch.zeros(1, 2, 8, 10, requires_grad=True)
    conv_same = F.conv2d(F.pad(x, (0, 1, 0, 1)), deconv.conv.weight, stride=2)  # TF 'SAME', 3x3 stride 2
    assert conv_same.shape == y.shape
    (grad,) = torch.autograd.grad(conv_same, x, y)
    torch.testing.assert_close(deconv(y), grad)


def source_attention(block: GlobalAggregation, x: torch.Tensor) -> torch.Tensor:
    """multihead_attention_3d in 2-D, transcribed: channels-last, split_heads, q scaled, softmax, combine."""
    q, k, v = (t.permute(0, 2, 3, 1) for t in (block.query(x), block.key(x), block.value(x)))  # NHWC
    n, h, w, c = q.shape
    heads = block.heads

    def split(t: torch.Tensor) -> torch.Tensor:  # [batch, h, w, heads, c/heads] -> [batch, heads, h*w, c/heads]
        return t.reshape(t.shape[0], t.shape[1], t.shape[2], heads, -1).permute(0, 3, 1, 2, 4).flatten(2, 3)

    q, k, v = split(q) * (c // heads) ** -0.5, split(k), split(v)
    weights = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
    out = (weights @ v).reshape(n, heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(n, h, w, c)  # combine_heads
    return block.out(out.permute(0, 3, 1, 2))


@pytest.mark.parametrize("heads,up", [(2, False), (1, True)])
def test_global_aggregation_matches_the_source(heads, up):
    torch.manual_seed(0)
    block = GlobalAggregation(6, 8, heads=heads, up=up).eval()
    x = torch.randn(3, 6, 4, 6)
    out = block(x)
    assert out.shape == ((3, 8, 8, 12) if up else (3, 8, 4, 6))
    torch.testing.assert_close(out, source_attention(block, x))
    # each sample attends over its own positions only (a sample/head mix-up would break this)
    other = torch.cat([x[:1], torch.randn(2, 6, 4, 6)])
    torch.testing.assert_close(block(other)[:1], out[:1])


def test_attention_dropout_only_while_training():
    torch.manual_seed(0)
    block = GlobalAggregation(4, 4, heads=2, up=False)
    x = torch.randn(1, 4, 4, 4)
    torch.testing.assert_close(block.eval()(x), block(x))
    block.train()
    assert not torch.allclose(block(x), block(x))


@pytest.mark.parametrize("size", [(8, 8), (36, 20)])
def test_forward_shapes(size):
    torch.manual_seed(0)
    model = build_model("nonlocal_unet", "small", attention="none", num_classes=3, input_size=size).eval()
    assert model(torch.randn(2, 3, *size)).shape == (2, 3, *size)


def test_refuses_attention_and_sizes_it_cannot_take():
    with pytest.raises(ValueError, match="takes no attention variant"):
        build_model("nonlocal_unet", "small", attention="pointwise")
    with pytest.raises(ValueError, match="divisible by 4"):
        build_model("nonlocal_unet", "small", attention="none", input_size=(30, 32))
