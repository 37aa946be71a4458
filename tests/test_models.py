"""Models: DACN layer table and counts, TF 'SAME' ops, shapes, attention placement and maps,
gradients, presets, learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from jointseg.models import build_model, count_parameters
from jointseg.models.base import level_grid
from jointseg.models.denseunet import DenseUNet
from jointseg.models.tf_same import SamePad2d, SamePool2d
from jointseg.variants import VARIANTS

ATTENTIONS = [v for v in VARIANTS if v != "custom"]
DACN_PARAMS = 48_840_260  # DACN's DenseUNet, RGB in, 2 classes: conv weights/biases, BN scales/offsets
DACN_ENCODER_PARAMS = 31_114_944  # start_block .. dense_block4/conv11
HYBRID_PARAMS = 49_681_122  # the earlier H-DenseUNet-style reconstruction, unchanged


def open_gates(model: torch.nn.Module) -> None:
    """Make the zero-initialised attention output scales non-zero so inner grads flow."""
    if model.attention is not None:
        with torch.no_grad():
            for gate in model.attention.gates():
                gate.fill_(0.5)


def dacn_conv_table(in_channels: int = 3, class_num: int = 2) -> list[tuple]:
    """DACN's convs in the order of ``DenseUnet.inference`` (moliqingcha/DACN denseunet.py),
    transcribed by hand: (name, kernel, stride, cin, cout, bias, bn).

    ops.conv2d defaults: bias=True, norm=True, activation=True; the stem passes
    norm=False (keeps its bias), every other call bias=False.
    """
    rows: list[tuple] = []

    def conv(name: str, k: int, cin: int, cout: int, stride: int = 1, bias: bool = False, bn: bool = True) -> int:
        rows.append((name, k, stride, cin, cout, bias, bn))
        return cout

    c = conv("start_block/conv1", 3, in_channels, 96, stride=2, bias=True, bn=False)
    c = conv("start_block/conv2", 3, c, 96, bias=True, bn=False)
    ch = conv1 = conv("start_block/conv3", 3, c, 96, bias=True, bn=False)
    block_out = {}
    for b, (num, width) in enumerate(zip((6, 12, 36, 24), (192, 384, 1056, 2112)), start=1):
        for i in range(1, num + 1):
            conv(f"dense_block{b}/dense/conv11_{i}", 1, ch, 192)
            conv(f"dense_block{b}/dense/conv33_{i}", 3, 192, 48)
            ch += 48  # tf.concat([inputs, outputs])
        block_out[b] = ch
        ch = conv(f"dense_block{b}/conv11", 1, ch, width)
    skips = {"up1": block_out[3], "up2": block_out[2], "up3": block_out[1], "up4": conv1, "up5": None}
    for stage, width in zip(skips, (768, 384, 96, 96, 64)):
        assert skips[stage] in (None, ch), stage  # DACN adds the skip: widths must agree
        ch = conv(f"{stage}/conv33", 3, ch, width)
    conv("up5/conv11", 1, ch, class_num)
    return rows


def table_params(rows: list[tuple]) -> int:
    return sum(k * k * cin * cout + bias * cout + bn * 2 * cout for _, k, _, cin, cout, bias, bn in rows)


def backbone_convs(model: nn.Module) -> list[tuple]:
    """(kernel, stride, cin, cout, bias, followed by BN) of every conv outside the attention block."""
    mods = [(n, m) for n, m in model.named_modules() if not n.startswith("attention")]
    out = []
    for i, (_, m) in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            nxt = mods[i + 1][1] if i + 1 < len(mods) else None
            bn = isinstance(nxt, nn.BatchNorm2d) and nxt.num_features == m.out_channels
            out.append((m.kernel_size[0], m.stride[0], m.in_channels, m.out_channels, m.bias is not None, bn))
    return out


def test_dacn_table_counts():
    rows = dacn_conv_table()
    assert len(rows) == 3 + 2 * (6 + 12 + 36 + 24) + 4 + 5 + 1
    assert table_params(rows) == DACN_PARAMS
    neck = [r[0] for r in rows].index("dense_block4/conv11")
    assert table_params(rows[: neck + 1]) == DACN_ENCODER_PARAMS


def test_paper_preset_is_dacn_layer_by_layer():
    """Every conv, in order: kernel, stride, widths, bias, and a BN right after it
    (post-activation); the counts equal DACN's."""
    model = build_model("denseunet", "paper", in_channels=3, num_classes=2, attention="none", input_size=(256, 256))
    expected = [row[1:] for row in dacn_conv_table(3, 2)]
    got = backbone_convs(model)
    assert len(got) == len(expected)
    for name_row, want, have in zip(dacn_conv_table(3, 2), expected, got):
        assert have == want, name_row[0]
    assert count_parameters(model) == DACN_PARAMS
    encoder = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("stem.", "stages.")))
    assert encoder == DACN_ENCODER_PARAMS
    assert model.head_relu and model.bottleneck_channels == 2112


@pytest.mark.parametrize("variant", ["joint", "self"])
def test_paper_attention_sees_the_2112_channel_bottleneck(variant):
    model = build_model("denseunet", "paper", attention=variant, input_size=(256, 256)).eval()
    assert model.attention_channels == 2112 and model.attention_grid == (8, 8)
    if variant != "joint":
        return  # one forward at 256^2 is enough
    seen = []
    model.attention.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert seen == [(1, 2112, 8, 8)]
    assert out.shape == (1, 2, 256, 256)
    assert out.min() >= 0  # the DACN head ends in a ReLU
    level16 = build_model("denseunet", "paper", attention="joint", attention_level=16, input_size=(256, 256))
    assert level16.attention_grid == (16, 16) and level16.attention_channels == 768


def test_hybrid_preset_is_the_earlier_network():
    model = build_model("denseunet", "h_denseunet_hybrid", attention="none", input_size=(256, 256))
    assert count_parameters(model) == HYBRID_PARAMS
    assert not model.head_relu and model.bottleneck_channels == 2208
    assert backbone_convs(model)[-1] == (1, 1, 64, 2, True, False)  # a plain 1x1 head with bias
    layers = [layer for stage in model.stages for layer in stage.block]
    assert len(layers) == 78 and all(isinstance(layer.body[0][0], nn.BatchNorm2d) for layer in layers)
    assert model.decoder[0].project is not None  # 2112-wide skip projected to 2208


def test_small_preset_has_the_dacn_topology():
    model = build_model("denseunet", "small", attention="none")
    assert 200_000 < count_parameters(model) < 500_000
    convs = backbone_convs(model)
    assert [(bias, bn) for *_, bias, bn in convs[:3]] == [(True, False)] * 3  # bias, no BN in the stem
    assert all(bn and not bias for *_, bias, bn in convs[3:])  # conv-BN(-ReLU) everywhere else
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in model.decoder.modules())
    assert model.bottleneck_channels == model.decoder[0].conv[0].in_channels


def _windows(n: int, pad_before: int) -> list[slice]:
    """Rows of each 3x3 stride-2 window on n rows after TF pads ``pad_before`` zeros first."""
    return [slice(max(0, 2 * i - pad_before), min(n, 2 * i - pad_before + 3)) for i in range(math.ceil(n / 2))]


@pytest.mark.parametrize("h,w,pad_h,pad_w", [(4, 6, 0, 0), (5, 7, 1, 1), (4, 5, 0, 1)])
def test_tf_same_pools(h, w, pad_h, pad_w):
    """TF 'SAME', 3x3 stride 2: an even size pads one row at the end only, an odd size
    one row on each side; averages count the in-image values only."""
    x = torch.randn(2, 3, h, w)
    avg, mx = SamePool2d("avg")(x), SamePool2d("max")(x)
    for i, rows in enumerate(_windows(h, pad_h)):
        for j, cols in enumerate(_windows(w, pad_w)):
            torch.testing.assert_close(avg[..., i, j], x[..., rows, cols].mean(dim=(-2, -1)))
            torch.testing.assert_close(mx[..., i, j], x[..., rows, cols].amax(dim=(-2, -1)))
    if h % 2 == 0:  # PyTorch's symmetric padding=1 shifts the windows of an even size
        torch_avg = F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False)
        assert torch_avg.shape == avg.shape and not torch.allclose(torch_avg, avg)


def _explicit_same_pool(x: torch.Tensor, mode: str) -> torch.Tensor:
    """TF 'SAME' 3x3 stride-2 pooling spelled out: pad (total // 2 before, the rest after),
    pool unpadded; averages divide by the pooled count of in-image ones."""

    def pads(n: int) -> tuple[int, int]:
        total = max((math.ceil(n / 2) - 1) * 2 + 3 - n, 0)
        return total // 2, total - total // 2

    (top, bottom), (left, right) = pads(x.shape[-2]), pads(x.shape[-1])
    if mode == "max":
        return F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float("-inf")), 3, 2)
    total = F.avg_pool2d(F.pad(x, (left, right, top, bottom)), 3, 2, divisor_override=1)
    ones = F.pad(torch.ones(1, 1, *x.shape[-2:]), (left, right, top, bottom))
    return total / F.avg_pool2d(ones, 3, 2, divisor_override=1)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_tf_same_pools_equal_explicit_padding_bit_for_bit(mode, channels_last):
    """The native padded/ceil-mode pool is the explicit TF padding exactly, forward and backward."""
    torch.manual_seed(0)
    for h, w in [(h, w) for h in range(1, 10) for w in (1, 2, 7, 8, 9)]:
        x = torch.randn(2, 3, h, w)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        got, want = SamePool2d(mode)(x), _explicit_same_pool(x, mode)
        assert got.shape == want.shape == (2, 3, math.ceil(h / 2), math.ceil(w / 2))
        assert torch.equal(got, want), (h, w)
        g = torch.randn_like(want)
        assert torch.equal(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0]), (h, w)
    with pytest.raises(ValueError, match="3x3 stride-2"):
        SamePool2d("avg", kernel=2)


def test_tf_same_strided_conv():
    conv = nn.Conv2d(2, 1, 3, stride=2, bias=False)
    x = torch.randn(1, 2, 6, 6)
    y = conv(SamePad2d(3, 2)(x))
    padded = F.pad(x, (0, 1, 0, 1))  # TF pads an even size at the end only
    assert y.shape == (1, 1, 3, 3)
    for i in range(3):
        for j in range(3):
            want = (conv.weight[0] * padded[0, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]).sum()
            torch.testing.assert_close(y[0, 0, i, j], want)


def _small_hybrid(**kwargs) -> DenseUNet:
    return DenseUNet(
        "h_denseunet_hybrid", stem=16, blocks=(1, 1, 1, 1), growth=8, decoder=(16, 16, 16, 16, 16), **kwargs
    )


@pytest.mark.parametrize("style", ["dacn", "hybrid"])
@pytest.mark.parametrize("level", [2, 4, 8, 16, "bottleneck"])
def test_level_grid_matches_odd_sizes(style, level):
    """The attention block is built for level_grid's size and raises on any other."""
    size = (72, 90)
    kwargs = {"attention": "self", "attention_level": level, "input_size": size}
    model = DenseUNet("small", **kwargs) if style == "dacn" else _small_hybrid(**kwargs)
    stride = 32 if level == "bottleneck" else level
    ceil_levels = None if style == "dacn" else 2
    assert model.attention_grid == level_grid(size, stride, ceil_levels)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, *size)).shape == (1, 2, *size)


def test_level_grid_rounding():
    assert level_grid((72, 90), 32) == (3, 3)  # 72 36 18 9 5 3; 90 45 23 12 6 3
    assert level_grid((72, 90), 32, 2) == (2, 2)  # 72 36 18 9 4 2; 90 45 23 11 5 2
    assert level_grid((256, 256), 32) == (8, 8) and level_grid((64, 64), 8) == (8, 8)


def test_head_relu_option():
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(0)
    with_relu = build_model(attention="none").eval()
    torch.manual_seed(0)
    without = build_model(attention="none", head_relu=False).eval()
    with torch.no_grad():
        a, b = with_relu(x), without(x)
    assert a.min() >= 0 and b.min() < 0  # a ReLU on logits clamps them at 0
    torch.testing.assert_close(a, b.clamp(min=0))
    with pytest.raises(ValueError, match="head_relu"):
        build_model("unet", head_relu=True)  # not a U-Net setting: an error, never ignored
    with pytest.raises(ValueError, match="no setting"):
        DenseUNet("small", grwoth=8)


@pytest.mark.parametrize("arch", ["denseunet", "unet"])
@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("level", ["bottleneck", 8])
def test_small_forward_backward(arch, attention, level):
    torch.manual_seed(0)
    model = build_model(
        arch, "small", in_channels=3, num_classes=3, attention=attention, attention_level=level, input_size=(64, 64)
    )
    open_gates(model)
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 3, 64, 64)
    F.cross_entropy(out, torch.randint(0, 3, (2, 64, 64))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    if model.attention is not None:
        inner = [p.grad.abs().sum() for n, p in model.attention.named_parameters()]
        assert all(g > 0 for g in inner)


def test_attention_grid_and_maps():
    model = build_model("denseunet", "small", attention="self", attention_level=8, input_size=(64, 64))
    assert model.attention_grid == (8, 8)
    assert model.attention.size == (8, 8)
    amap = model.eval().attention_map(torch.randn(2, 3, 64, 64), query=(3, 4))
    assert amap.shape == (2, 1, 8, 8)  # self: one softmax over the keys
    torch.testing.assert_close(amap.sum(dim=(2, 3)), torch.ones(2, 1))
    bottleneck = build_model("denseunet", "small", attention="pointwise", input_size=(64, 64))
    assert bottleneck.attention_grid == (2, 2)
    assert bottleneck.eval().attention_map(torch.randn(1, 3, 64, 64), (1, 1)).shape == (1, 2, 2, 2)
    unet = build_model("unet", "small", attention="self", attention_level=16, input_size=(48, 80))
    assert unet.attention_grid == (3, 5)
    assert unet(torch.randn(1, 3, 48, 80)).shape == (1, 2, 48, 80)


def test_attention_map_sees_the_captured_features():
    """The model's map equals the block's map on the features at its level."""
    torch.manual_seed(0)
    model = build_model("unet", "small", attention="joint", attention_level=4).eval()
    x = torch.randn(1, 3, 64, 64)
    feats = []
    model.attention.register_forward_hook(lambda m, a, o: feats.append(a[0]))
    amap = model.attention_map(x, (5, 9))
    assert amap.shape == (1, len(model.attention.branches), 16, 16)
    torch.testing.assert_close(amap, model.attention.attention_map(feats[0], (5, 9)))


@pytest.mark.parametrize("in_channels,num_classes", [(1, 2), (3, 4)])
def test_channels_and_classes(in_channels, num_classes):
    model = build_model(in_channels=in_channels, num_classes=num_classes)
    assert model(torch.randn(1, in_channels, 64, 64)).shape == (1, num_classes, 64, 64)


def test_none_has_no_attention_and_bad_arguments():
    model = build_model(attention="none")
    assert model.attention is None
    with pytest.raises(ValueError, match="no attention"):
        model.attention_map(torch.randn(1, 3, 64, 64), (0, 0))
    assert model(torch.randn(1, 3, 96, 80)).shape == (1, 2, 96, 80)  # no size tie without attention
    with pytest.raises(ValueError, match="arch"):
        build_model("resnet")
    with pytest.raises(ValueError, match="preset"):
        build_model(preset="huge")
    with pytest.raises(ValueError, match="attention_level"):
        build_model(attention_level=64)
    with pytest.raises(ValueError, match="num_classes"):
        build_model(num_classes=1)


def test_wrong_input_size_raises():
    model = build_model(attention="joint", attention_level=8, input_size=(64, 64))
    with pytest.raises(ValueError, match=r"8x8.*16x16.*sliding window"):
        model(torch.randn(1, 3, 128, 128))


def _train_two_steps(channels_last: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Logits and gradients of the first step, weights after two Adam steps (small DenseUNet)."""
    torch.manual_seed(0)
    model = build_model(attention="joint", attention_level=8)
    open_gates(model)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 2, (2, 64, 64))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    first: tuple = ()
    for _ in range(2):
        logits = model(x)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(logits, y).backward()
        if not first:
            first = (
                logits.detach().contiguous(),
                {n: p.grad.detach().contiguous() for n, p in model.named_parameters()},
            )
        opt.step()
    return *first, {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def test_channels_last_trains_the_same_network_reproducibly():
    """channels_last (training's default on CPU and CUDA) only reorders the arithmetic:
    logits and gradients agree with NCHW to rounding, and a rerun is bit-identical."""
    torch.use_deterministic_algorithms(True)
    try:
        nchw_logits, nchw_grads, _ = _train_two_steps(False)
        cl_logits, cl_grads, cl = _train_two_steps(True)
        again_logits, again_grads, again = _train_two_steps(True)
    finally:
        torch.use_deterministic_algorithms(False)
    # ~100 conv-BN layers (BN normalises by small batch variances) amplify fp32 rounding
    torch.testing.assert_close(cl_logits, nchw_logits, rtol=1e-3, atol=1e-3)
    # each gradient to 0.1 % of its largest entry; the floor is for gradients that are zero up
    # to rounding (a key bias cannot change a softmax over keys)
    floor = 1e-6 * max(float(g.abs().max()) for g in nchw_grads.values())
    for name, grad in nchw_grads.items():
        torch.testing.assert_close(
            cl_grads[name], grad, rtol=1e-2, atol=1e-3 * float(grad.abs().max()) + floor, msg=name
        )
    assert torch.equal(again_logits, cl_logits)
    assert all(torch.equal(again_grads[n], cl_grads[n]) for n in cl_grads)
    assert all(torch.equal(again[n], cl[n]) for n in cl)


def test_state_dict_round_trip_and_seed():
    torch.manual_seed(0)
    a = build_model(attention="joint", attention_level=8)
    open_gates(a)
    torch.manual_seed(0)
    b = build_model(attention="joint", attention_level=8)
    open_gates(b)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(a.eval()(x), b.eval()(x))  # same seed, same model
    c = build_model(attention="joint", attention_level=8).eval()
    assert not torch.equal(c(x), a(x))
    c.load_state_dict(a.state_dict())
    assert torch.equal(c(x), a(x))


def test_count_parameters():
    model = build_model(attention="none")
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
    model.head.weight.requires_grad_(False)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters()) - model.head.weight.numel()
    small = count_parameters(build_model(attention="joint"))
    assert 200_000 < small < 2_000_000


@pytest.mark.slow
def test_torch_compile_small():
    torch.manual_seed(0)
    model = build_model(attention="joint", attention_level=8).eval()
    open_gates(model)
    x = torch.randn(2, 3, 64, 64)
    compiled = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)


def synthetic_lesions(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright noisy ellipses on a textured background, 64x64 RGB."""
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    r = torch.rand(n, 6, generator=gen)
    cy, cx = 16 + 32 * r[:, 0, None, None], 16 + 32 * r[:, 1, None, None]
    ay, ax = 6 + 10 * r[:, 2, None, None], 6 + 10 * r[:, 3, None, None]
    mask = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1
    image = 0.3 * torch.randn(n, 3, 64, 64, generator=gen) + 0.6 * mask[:, None] * r[:, 4:5, None, None].add(0.5)
    return image, mask.long()


@pytest.mark.slow
def test_small_preset_learns_synthetic_lesions():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = build_model(attention="joint", attention_level=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    for _ in range(300):
        x, y = synthetic_lesions(4, gen)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = synthetic_lesions(32, torch.Generator().manual_seed(99))
    with torch.no_grad():
        pred = model.eval()(x).argmax(1)
    dice = 2 * (pred * y).sum() / (pred.sum() + y.sum())
    assert dice >= 0.8, float(dice)
