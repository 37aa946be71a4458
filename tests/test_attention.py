"""Unified attention: fast module vs. the slow reference, maps, gradients, sizes."""

from __future__ import annotations

import pytest
import torch

from jointseg.attention import VARIANTS, build
from jointseg.attention import terms as T
from jointseg.attention.psamask import num_offsets, relative_index, row_window_index
from jointseg.attention.reference import psamask_loops, reference_forward, reference_probabilities

# (variant, options): every named variant plus ablation term sets via options
CASES = [(v, {}) for v in VARIANTS if v not in ("none", "custom")] + [
    ("custom", {"terms": ("E1", "E2", "E3", "E4")}),
    ("custom", {"terms": ("E1", "E2", "E3", "E4"), "branches": ("collect", "distribute")}),
    ("custom", {"terms": ("E3", "E4")}),
    ("custom", {"terms": ("E1", "E2", "E4"), "combine": "sum", "branches": ("distribute",)}),
    ("pointwise", {"branches": ("distribute",)}),
]
IDS = [f"{v}-{'-'.join(o.get('terms', ()))}{'-'.join(o.get('branches', ()))}{o.get('combine', '')}" for v, o in CASES]
SIZES = [(3, 5), (4, 7), (5, 5), (1, 3)]
EXPECTED_BRANCHES = {"pointwise": 2, "self": 1, "joint": 1, "joint_sum": 1, "joint_product": 1}


def randomised(module: torch.nn.Module, scale: float = 0.5) -> torch.nn.Module:
    """Perturb every parameter (incl. the zero-initialised output gamma and E3/E4 tables)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
    return module


@pytest.mark.parametrize("variant,options", CASES, ids=IDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("train", [False, True])
def test_forward_matches_reference(variant, options, size, train):
    torch.manual_seed(0)
    # chunk=1 -> one image row per chunk, so chunking is exercised on every size
    for extra in ({}, {"chunk": 1}):
        m = randomised(build(variant, 6, size, **options, **extra).double()).train(train)
        x = torch.randn(2, 6, *size, dtype=torch.float64)
        y = m(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y, reference_forward(m, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant,options", CASES, ids=IDS)
def test_attention_map_matches_reference_and_sums_to_one(variant, options):
    torch.manual_seed(0)
    size = (4, 7)
    m = randomised(build(variant, 6, size, **options).double()).eval()
    x = torch.randn(2, 6, *size, dtype=torch.float64)
    probs = reference_probabilities(m, x)  # (N, B, L, L)
    for q in [(0, 0), (2, 3), (3, 6)]:
        amap = m.attention_map(x, query=q)
        assert amap.shape == (2, len(m.branches), *size)
        if variant in EXPECTED_BRANCHES and not options:
            assert amap.shape[1] == EXPECTED_BRANCHES[variant]
        assert (amap >= 0).all()
        torch.testing.assert_close(amap.sum(dim=(2, 3)), torch.ones(2, amap.shape[1], dtype=torch.float64))
        torch.testing.assert_close(amap.flatten(2), probs[:, :, q[0] * size[1] + q[1]], atol=1e-10, rtol=0)


def test_pointwise_branch_order_and_distribute_definition():
    """Slice 0 is collect, slice 1 is distribute with A_d(i,j) = softmax_j F_d(x_j)[i-j]."""
    torch.manual_seed(0)
    size = (3, 4)
    height, width = size
    m = randomised(build("pointwise", 4, size).double()).eval()
    x = torch.randn(1, 4, *size, dtype=torch.float64)
    qi = (1, 2)
    amap = m.attention_map(x, qi)
    for b, name in enumerate(("collect", "distribute")):
        pred = m.predictors[name]
        fmap = torch.einsum("mc,nchw->nmhw", pred.weight, pred.hidden(x)) + pred.bias[None, :, None, None]
        logits = torch.empty(height, width, dtype=torch.float64)
        for hj in range(height):
            for wj in range(width):
                if name == "collect":  # predicted at the query, offset j - i
                    dh, dw, at = hj - qi[0], wj - qi[1], (qi[0], qi[1])
                else:  # predicted at the key, offset i - j
                    dh, dw, at = qi[0] - hj, qi[1] - wj, (hj, wj)
                k = (dh + height - 1) * (2 * width - 1) + dw + width - 1
                logits[hj, wj] = fmap[0, k, at[0], at[1]]
        torch.testing.assert_close(amap[0, b], torch.softmax(logits.flatten(), 0).view(size))


@pytest.mark.parametrize("size", [(3, 5), (4, 4), (2, 7)])
def test_index_gather_equals_psanet_loops(size):
    height, width = size
    length = height * width
    fmap = torch.randn(2, num_offsets(size), height, width, dtype=torch.float64)
    flat = fmap.flatten(2)  # (N, M, L): map predicted at position p
    idx = relative_index(size)
    pos = torch.arange(length)
    # collect: logits[i, j] = F(x_i)[idx[i, j]]; PSANet's buffer is [n, j, i]
    collect = flat[:, idx, pos[:, None]]
    torch.testing.assert_close(psamask_loops(fmap, "collect").flatten(2).transpose(1, 2), collect)
    # distribute: logits[i, j] = F(x_j)[idx[j, i]]
    distribute = flat[:, idx.t(), pos[None, :]]
    torch.testing.assert_close(psamask_loops(fmap, "distribute").flatten(2).transpose(1, 2), distribute)
    assert not torch.equal(collect, distribute)


def test_row_window_gather_equals_full_gather():
    size = (4, 6)
    height, width = size
    hidden = torch.randn(2, height, width, 5, dtype=torch.float64)
    weight = torch.randn(num_offsets(size), 5, dtype=torch.float64)
    bias = torch.randn(num_offsets(size), dtype=torch.float64)
    full = hidden.flatten(1, 2) @ weight.t() + bias  # (N, L, M), PSANet's map
    expected = full.gather(-1, relative_index(size).expand(2, -1, -1))
    rows = torch.tensor([3, 0, 2])
    got = T.relative_logits(hidden, weight, bias, rows, size, row_window_index(size))
    torch.testing.assert_close(got, expected[:, T.query_positions(rows, width)])


@pytest.mark.parametrize("variant,options", CASES, ids=IDS)
def test_backward_reaches_every_parameter(variant, options):
    torch.manual_seed(0)
    m = randomised(build(variant, 8, (4, 5), **options)).train()
    x = torch.randn(2, 8, 4, 5, requires_grad=True)
    (m(x) * torch.randn(2, 8, 4, 5)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_checkpointed_chunks_give_same_gradients():
    torch.manual_seed(0)
    a = randomised(build("joint", 6, (5, 4), chunk=4, checkpoint=True).double())
    torch.manual_seed(0)
    b = randomised(build("joint", 6, (5, 4)).double())
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    w = torch.randn_like(x)
    for m in (a, b):
        (m(x) * w).sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=name)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v not in ("none", "custom")])
def test_starts_as_identity_and_is_seeded(variant):
    x = torch.randn(2, 8, 4, 4)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        m = build(variant, 8, (4, 4))
        torch.testing.assert_close(m(x), x)  # zero output gamma
        randomised(m)
        outs.append(m(x))
    assert not torch.allclose(outs[0], x)
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v not in ("none", "custom")])
def test_state_dict_round_trip(variant):
    torch.manual_seed(0)
    m = randomised(build(variant, 8, (3, 5))).eval()
    state = m.state_dict()
    assert not any("index" in k for k in state)  # index tables are rebuilt, not stored
    fresh = build(variant, 8, (3, 5)).eval()
    fresh.load_state_dict(state)
    x = torch.randn(1, 8, 3, 5)
    assert torch.equal(m(x), fresh(x))


def test_index_tables_are_buffers_built_once():
    m = build("joint", 4, (3, 3))
    before = m.rel_index.data_ptr()
    m(torch.randn(1, 4, 3, 3))
    m(torch.randn(1, 4, 3, 3))
    assert m.rel_index.data_ptr() == before
    assert {"rel_index", "window_index"} <= {n for n, _ in m.named_buffers()}


def test_joint_product_equals_joint():
    """softmax(a) * softmax(b), renormalised, is softmax(a + b): same map, other code."""
    torch.manual_seed(0)
    joint = randomised(build("joint", 6, (4, 5)).double()).eval()
    product = build("joint_product", 6, (4, 5)).double().eval()
    product.load_state_dict(joint.state_dict())
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(product(x), joint(x))
    summed = build("joint_sum", 6, (4, 5)).double().eval()
    summed.load_state_dict(joint.state_dict())
    assert not torch.allclose(summed(x), joint(x))


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v not in ("none", "custom")])
def test_wrong_size_raises(variant):
    m = build(variant, 4, (8, 8))
    with pytest.raises(ValueError, match=r"8x8.*16x12.*sliding window"):
        m(torch.randn(1, 4, 16, 12))
    with pytest.raises(ValueError, match=r"8x8.*4x4"):
        m.attention_map(torch.randn(1, 4, 4, 4), (0, 0))


def test_none_and_bad_arguments():
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(build("none", 4, (3, 3))(x), x)
    with pytest.raises(ValueError, match="unknown attention variant"):
        build("nonlocal", 4, (3, 3))
    with pytest.raises(ValueError, match="terms"):
        build("custom", 4, (3, 3))
    with pytest.raises(ValueError, match="terms"):
        build("custom", 4, (3, 3), terms=("E5",))
    with pytest.raises(ValueError, match="combine"):
        build("joint", 4, (3, 3), combine="max")
    with pytest.raises(ValueError, match="outside"):
        build("self", 4, (3, 3)).attention_map(torch.randn(1, 4, 3, 3), (3, 0))


def test_self_attention_uses_fused_kernel(monkeypatch):
    """E1 alone goes through scaled_dot_product_attention (no L x L matrix in Python)."""
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    build("self", 8, (4, 4))(torch.randn(2, 8, 4, 4))
    assert calls == [(2, 1, 16, 4)]
    build("joint", 8, (4, 4))(torch.randn(2, 8, 4, 4))
    assert len(calls) == 1
