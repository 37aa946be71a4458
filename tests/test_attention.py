"""Unified attention: every form vs. the slow reference, maps, gradients, sizes, parameters."""

from __future__ import annotations

import pytest
import torch
from attention_helpers import BRANCH_COUNT, CASES, IDS, NAMED, PSANET, SIZES, randomised

from jointseg.attention import VARIANTS, build
from jointseg.attention.psamask import num_offsets, relative_index
from jointseg.attention.reference import psamask_loops, reference_forward, reference_logits, reference_probabilities


@pytest.mark.parametrize("variant,options", CASES, ids=IDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("train", [False, True])
def test_forward_matches_reference(variant, options, size, train):
    torch.manual_seed(0)
    # chunk=1 -> one image row per chunk, so chunking is exercised on every size
    for extra in ({}, {"chunk": 1}):
        m = randomised(build(variant, 8, size, **options, **extra).double()).train(train)
        x = torch.randn(2, 8, *size, dtype=torch.float64)
        y = m(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y, reference_forward(m, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant,options", CASES, ids=IDS)
def test_attention_map_matches_reference_and_sums_to_one(variant, options):
    torch.manual_seed(0)
    size = (4, 7)
    m = randomised(build(variant, 8, size, **options).double()).eval()
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    probs = reference_probabilities(m, x)  # (N, B, L, L)
    for q in [(0, 0), (2, 3), (3, 6)]:
        amap = m.attention_map(x, query=q)
        assert amap.shape == (2, len(m.branches), *size)
        if not options:
            assert amap.shape[1] == BRANCH_COUNT.get(variant, amap.shape[1])
        assert (amap >= 0).all()
        torch.testing.assert_close(amap.sum(dim=(2, 3)), torch.ones(2, amap.shape[1], dtype=torch.float64))
        torch.testing.assert_close(amap.flatten(2), probs[:, :, q[0] * size[1] + q[1]], atol=1e-10, rtol=0)


def test_parallel_map_order_is_pointwise_then_self():
    torch.manual_seed(0)
    m = randomised(build("parallel", 8, (3, 4)).double()).eval()
    x = torch.randn(1, 8, 3, 4, dtype=torch.float64)
    assert m.branches == ("collect", "distribute", "content")
    pointwise, self_block = m.parts
    expected = torch.cat([pointwise.attention_map(x, (1, 2)), self_block.attention_map(x, (1, 2))], dim=1)
    torch.testing.assert_close(m.attention_map(x, (1, 2)), expected)
    torch.testing.assert_close(m(x), pointwise(x) + self_block(x) - x)


@pytest.mark.parametrize("options", [{}, PSANET], ids=["unified", "psanet"])
def test_pointwise_branch_order_and_distribute_definition(options):
    """Slice 0 is collect, slice 1 is distribute with A_d(i,j) = softmax_j F_d(z_j)[i-j]."""
    torch.manual_seed(0)
    height, width = size = (3, 4)
    m = randomised(build("pointwise", 4, size, **options).double()).eval()
    x = torch.randn(1, 4, *size, dtype=torch.float64)
    qi = (1, 2)
    amap = m.attention_map(x, qi)
    for b, name in enumerate(("collect", "distribute")):
        pred = m.predictors[name]
        z = m.reduce[name](x) if options else x
        fmap = torch.einsum("mc,nchw->nmhw", pred.weight, pred.hidden(z))  # no bias
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


@pytest.mark.parametrize("variant,options", [("joint", {}), ("pointwise", PSANET)], ids=["joint", "psanet"])
def test_checkpointed_chunks_give_same_gradients(variant, options):
    grads = []
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    w = torch.randn_like(x)
    for extra in ({"chunk": 4, "checkpoint": True}, {}):
        torch.manual_seed(0)
        m = randomised(build(variant, 6, (5, 4), **options, **extra).double())
        (m(x) * w).sum().backward()
        grads.append({name: p.grad for name, p in m.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], msg=name)


@pytest.mark.parametrize("variant", NAMED)
def test_starts_as_identity_and_is_seeded(variant):
    x = torch.randn(2, 8, 4, 4)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        m = build(variant, 8, (4, 4))
        torch.testing.assert_close(m(x), x)  # zero output gammas
        assert m.gates() and all(not g.any() for g in m.gates())
        randomised(m)
        outs.append(m(x))
    assert not torch.allclose(outs[0], x)
    assert torch.equal(outs[0], outs[1])


def test_psanet_structure_is_not_the_identity():
    """PSANet's block ends in conv-BN-ReLU over [x, attended]: a fresh non-negative map."""
    torch.manual_seed(0)
    m = build("pointwise", 8, (4, 4), structure="psanet").train()
    assert m.gates() == []
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert (y >= 0).all() and not torch.allclose(y, x)
    (y * torch.randn_like(y)).sum().backward()
    for name, p in m.named_parameters():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("variant,options", [(v, {}) for v in NAMED] + [("pointwise", PSANET)])
def test_state_dict_round_trip(variant, options):
    torch.manual_seed(0)
    m = randomised(build(variant, 8, (3, 5), **options)).eval()
    state = m.state_dict()
    assert not any("index" in k for k in state)  # index tables are rebuilt, not stored
    fresh = build(variant, 8, (3, 5), **options).eval()
    fresh.load_state_dict(state)
    x = torch.randn(1, 8, 3, 5)
    assert torch.equal(m(x), fresh(x))


def test_product_of_softmaxes_is_the_joint_softmax():
    """softmax(E1) * softmax(E2), renormalised, is softmax(E1 + E2): why no product variant exists."""
    torch.manual_seed(0)
    joint = randomised(build("joint", 6, (4, 5)).double()).eval()
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    logits = reference_logits(joint, x)
    assert list(logits) == ["collect", "distribute"]
    product = []
    for e1, e2 in logits.values():
        p = torch.softmax(e1, dim=-1) * torch.softmax(e2, dim=-1)
        product.append(p / p.sum(-1, keepdim=True))
    torch.testing.assert_close(torch.stack(product, 1), reference_probabilities(joint, x))
    summed = build("joint_sum", 6, (4, 5)).double().eval()
    summed.load_state_dict(joint.state_dict())
    assert not torch.allclose(summed(x), joint(x))


def _shapes(m: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in m.named_parameters()}


def test_joint_differs_from_pointwise_by_e1_alone_and_parallel_holds_both():
    pointwise, joint, joint_sum = (_shapes(build(v, 16, (4, 4))) for v in ("pointwise", "joint", "joint_sum"))
    assert joint == joint_sum
    extra = {n: s for n, s in joint.items() if n not in pointwise}
    assert {n.split(".")[0] for n in extra} == {"query", "key"}  # theta, phi of E1
    assert {n: s for n, s in joint.items() if n in pointwise} == pointwise
    parallel = _shapes(build("parallel", 16, (4, 4)))
    self_block = _shapes(build("self", 16, (4, 4)))
    assert parallel == {
        **{f"parts.0.{n}": s for n, s in pointwise.items()},
        **{f"parts.1.{n}": s for n, s in self_block.items()},
    }


@pytest.mark.parametrize("options", [{}, PSANET], ids=["unified", "psanet"])
def test_only_the_predictor_weight_depends_on_the_offsets(options):
    small, large = ((3, 4), (5, 6))
    a, b = (_shapes(build("pointwise", 16, s, **options)) for s in (small, large))
    assert a.keys() == b.keys()
    differ = {n for n in a if a[n] != b[n]}
    assert differ == {"predictors.collect.weight", "predictors.distribute.weight"}
    for n in differ:  # one row per offset: (M, C')
        assert (a[n][0], b[n][0]) == (num_offsets(small), num_offsets(large))
        assert a[n][1:] == b[n][1:]


def test_e4_adds_exactly_one_parameter_per_offset():
    size = (5, 6)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    plain = count(build("pointwise", 16, size))
    assert count(build("pointwise", 16, size, terms=("E2", "E4"))) - plain == num_offsets(size)


def semseg_psa_layers(c: int, cr: int, m: int) -> list[tuple[str, int, int, int, bool]]:
    """hszhao/semseg model/psanet.py: PSA(c, cr, psa_type=2) with mask_h * mask_w = m, and
    the head's first conv-BN (``cls.0``, ``cls.1``: 2*2048 -> 512 there, 2C -> C in our block).

    Rows (name, kernel (0 = BatchNorm2d), in, out, bias), read off semseg's constructor.
    """
    rows = []
    for s in ("", "_p"):  # collect, distribute
        rows += [
            (f"reduce{s}.0", 1, c, cr, False),
            (f"reduce{s}.1", 0, cr, cr, True),
            (f"attention{s}.0", 1, cr, cr, False),
            (f"attention{s}.1", 0, cr, cr, True),
            (f"attention{s}.3", 1, cr, m, False),
        ]
    return rows + [
        ("proj.0", 1, 2 * cr, c, False),
        ("proj.1", 0, c, c, True),
        ("cls.0", 3, 2 * c, c, False),
        ("cls.1", 0, c, c, True),
    ]


SEMSEG_TO_OURS = {
    "reduce": "reduce.collect",
    "reduce_p": "reduce.distribute",
    "attention": "predictors.collect.hidden",
    "attention_p": "predictors.distribute.hidden",
    "proj": "proj",
    "cls": "fuse",
}


@pytest.mark.parametrize("channels,reduction,size", [(16, 4, (3, 4)), (12, 2, (5, 5))])
def test_psanet_structure_has_semseg_layers(channels, reduction, size):
    m = build("pointwise", channels, size, structure="psanet", psa_reduction=reduction)
    cr, offsets = channels // reduction, num_offsets(size)
    expected: dict[str, tuple[int, ...]] = {}
    for name, kernel, cin, cout, bias in semseg_psa_layers(channels, cr, offsets):
        module, index = name.split(".")
        ours = f"{SEMSEG_TO_OURS[module]}.{index}"
        if name.startswith("attention") and index == "3":  # the predictor's last conv: its own weight
            ours = SEMSEG_TO_OURS[module].removesuffix(".hidden")
        expected[f"{ours}.weight"] = (cout,) if kernel == 0 else (cout, cin, kernel, kernel)
        if bias:
            expected[f"{ours}.bias"] = (cout,)
    # the predictor keeps its 1x1 conv as an (M, C_r) matrix: compare it as (M, C_r, 1, 1)
    got = {n: tuple(p.shape) + ((1, 1) if p.dim() == 2 else ()) for n, p in m.named_parameters()}
    assert got == expected
    total = (
        2 * (channels * cr + 2 * cr + cr * cr + 2 * cr + cr * offsets)
        + (2 * cr * channels + 2 * channels)
        + (9 * 2 * channels * channels + 2 * channels)
    )
    assert sum(p.numel() for p in m.parameters()) == total


@pytest.mark.parametrize("variant,options", [(v, {}) for v in NAMED] + [("pointwise", PSANET)])
def test_wrong_size_raises(variant, options):
    m = build(variant, 4, (8, 8), **options)
    with pytest.raises(ValueError, match=r"8x8.*16x12.*sliding window"):
        m(torch.randn(1, 4, 16, 12))
    with pytest.raises(ValueError, match=r"8x8.*4x4"):
        m.attention_map(torch.randn(1, 4, 4, 4), (0, 0))


def test_none_and_bad_arguments():
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(build("none", 4, (3, 3))(x), x)
    assert "joint_product" not in VARIANTS
    with pytest.raises(ValueError, match="unknown attention variant"):
        build("joint_product", 4, (3, 3))
    with pytest.raises(ValueError, match="terms"):
        build("custom", 4, (3, 3))
    with pytest.raises(ValueError, match="terms"):
        build("custom", 4, (3, 3), terms=("E5",))
    with pytest.raises(ValueError, match="terms"):
        build("parallel", 4, (3, 3), terms=("E1",))
    with pytest.raises(ValueError, match="combine"):
        build("joint", 4, (3, 3), combine="product")
    with pytest.raises(ValueError, match="e1_scale"):
        build("pointwise", 4, (3, 3), e1_scale="cbrt")
    with pytest.raises(ValueError, match="structure"):
        build("pointwise", 4, (3, 3), structure="danet")
    with pytest.raises(ValueError, match="branches"):
        build("pointwise", 4, (3, 3), structure="psanet", branches=("both",))
    with pytest.raises(ValueError, match="outside"):
        build("self", 4, (3, 3)).attention_map(torch.randn(1, 4, 3, 3), (3, 0))


def test_structure_applies_to_point_wise_blocks_only():
    assert type(build("pointwise", 8, (3, 3), structure="psanet")).__name__ == "PSABlock"
    parallel = build("parallel", 8, (3, 3), structure="psanet")
    assert [type(p).__name__ for p in parallel.parts] == ["PSABlock", "JointAttention"]
    for variant in ("self", "joint", "joint_sum"):
        assert type(build(variant, 8, (3, 3), structure="psanet")).__name__ == "JointAttention"


@pytest.mark.parametrize("e1_scale,factor", [("none", 1.0), ("sqrt", 0.5)])
def test_self_attention_uses_fused_kernel(monkeypatch, e1_scale, factor):
    """E1 alone goes through scaled_dot_product_attention (no L x L matrix in Python)."""
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append((args[0].shape, kwargs.get("scale")))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    build("self", 8, (4, 4), e1_scale=e1_scale)(torch.randn(2, 8, 4, 4))  # C' = 4
    assert calls == [((2, 1, 16, 4), factor)]
    build("joint", 8, (4, 4), e1_scale=e1_scale)(torch.randn(2, 8, 4, 4))
    assert len(calls) == 1
    build("parallel", 8, (4, 4), e1_scale=e1_scale)(torch.randn(2, 8, 4, 4))
    assert len(calls) == 2
