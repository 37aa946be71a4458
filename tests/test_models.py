"""Models: shapes, attention placement and maps, gradients, presets, learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from jointseg.attention import VARIANTS
from jointseg.models import build_model, count_parameters

ATTENTIONS = [v for v in VARIANTS if v != "custom"]
PAPER_PARAMS = 49_681_122  # DenseUNet paper preset without attention (SCIENCE.md: about 48.8 M)


def open_gates(model: torch.nn.Module) -> None:
    """Make the zero-initialised attention output gamma non-zero so inner grads flow."""
    if model.attention is not None:
        with torch.no_grad():
            model.attention.out_norm.weight.fill_(0.5)


@pytest.mark.parametrize("arch", ["denseunet", "unet"])
@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("level", ["bottleneck", 8])
def test_small_forward_backward(arch, attention, level):
    torch.manual_seed(0)
    model = build_model(arch, "small", in_channels=3, num_classes=3, attention=attention,
                        attention_level=level, input_size=(64, 64))
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
    model = build_model("denseunet", "small", attention="joint", attention_level=8, input_size=(64, 64))
    assert model.attention_grid == (8, 8)
    assert model.attention.size == (8, 8)
    amap = model.eval().attention_map(torch.randn(2, 3, 64, 64), query=(3, 4))
    assert amap.shape == (2, 1, 8, 8)
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
    assert amap.shape == (1, 1, 16, 16)
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
def test_paper_preset():
    model = build_model("denseunet", "paper", attention="none", input_size=(256, 256))
    assert count_parameters(model) == PAPER_PARAMS
    model = build_model("denseunet", "paper", attention="joint", input_size=(256, 256)).eval()
    assert model.attention_grid == (8, 8) and model.attention.channels == 2208
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 256)).shape == (1, 2, 256, 256)
    level16 = build_model("denseunet", "paper", attention="joint", attention_level=16, input_size=(256, 256))
    assert level16.attention_grid == (16, 16) and level16.attention.channels == 768


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
