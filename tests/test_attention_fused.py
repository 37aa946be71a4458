"""The fused chunked attention (attention/fused.py): gradients, logits, memory, and every block vs. the reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from attention_helpers import CASES, IDS, randomised

from jointseg.attention import build, fused
from jointseg.attention.psamask import num_offsets, relative_index
from jointseg.attention.reference import reference_forward

ROOT = Path(__file__).resolve().parents[1]
F64 = torch.float64


def _inputs(size, content: bool, modes: tuple[str, ...], channels: int = 4, seed: int = 0):
    """Random leaf tensors for an attention with one relative term per branch in ``modes``."""
    gen = torch.Generator().manual_seed(seed)
    n, (h, w) = 2, size
    rand = lambda *shape: torch.randn(*shape, generator=gen, dtype=F64).requires_grad_()
    q, k = (rand(n, h * w, channels), rand(n, h * w, channels)) if content else (None, None)
    v = rand(n, len(modes), h * w, 3)
    rel = [t for _ in modes for t in (rand(n, h, w, channels), rand(num_offsets(size), channels))]
    return q, k, v, rel


def _attend(modes, size, chunk, recompute, scale=0.7):
    def f(q, k, v, *rel):
        terms = tuple(fused.Relative(b, m, rel[2 * b], rel[2 * b + 1]) for b, m in enumerate(modes))
        return fused.attend(fused.Inputs(v, q, k, scale, terms), size, chunk, recompute)

    return f


def _explicit(q, k, v, rel, modes, size, scale=0.7):
    """The same attention from the definitions, with the (L, L) index table."""
    idx = relative_index(size)  # idx[i, j] = grid index of offset j - i
    outs = []
    for b, mode in enumerate(modes):
        fmap = rel[2 * b].flatten(1, 2) @ rel[2 * b + 1].t()  # (N, L, M): F at every position
        n = fmap.shape[0]
        if mode == "collect":  # F(z_i)[j - i]
            logits = fmap.gather(-1, idx.expand(n, -1, -1))
        else:  # F(z_j)[i - j] = F(z_j)[idx[j, i]]
            logits = fmap.gather(-1, idx.expand(n, -1, -1)).transpose(1, 2)
        if q is not None:
            logits = logits + scale * q @ k.transpose(1, 2)
        outs.append(torch.softmax(logits, dim=-1) @ v[:, b])
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("modes", [("collect", "distribute"), ("distribute",), ("collect",)])
@pytest.mark.parametrize("content", [True, False])
@pytest.mark.parametrize("chunk,recompute", [(4, True), (8, False), (100, True)])
def test_function_gradcheck_and_definition(modes, content, chunk, recompute):
    """3 x 4 map, C = 4: one, two and all image rows per chunk, both backward paths."""
    size = (3, 4)
    args = _inputs(size, content, modes)
    f = _attend(modes, size, chunk, recompute)
    q, k, v, rel = args
    torch.testing.assert_close(f(q, k, v, *rel), _explicit(q, k, v, rel, modes, size), atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(f, (q, k, v, *rel), fast_mode=True)


def test_two_terms_on_one_branch_and_a_constant_input():
    """E4 rides as a collect term with constant features: no gradient wanted there."""
    size = (3, 4)
    _, _, v, (z, weight) = _inputs(size, False, ("distribute",))
    ones = torch.ones(2, *size, 1, dtype=F64)
    bias = torch.randn(num_offsets(size), 1, dtype=F64, requires_grad=True)

    def f(v, z, weight, bias):
        terms = (fused.Relative(0, "distribute", z, weight), fused.Relative(0, "collect", ones, bias))
        return fused.attend(fused.Inputs(v, relative=terms), size, chunk=4)

    assert torch.autograd.gradcheck(f, (v, z, weight, bias), fast_mode=True)
    idx = relative_index(size)
    distribute = (z.flatten(1, 2) @ weight.t()).gather(-1, idx.expand(2, -1, -1)).transpose(1, 2)
    logits = distribute + bias[idx, 0]  # + v_{j - i}
    torch.testing.assert_close(f(v, z, weight, bias)[:, 0], torch.softmax(logits, -1) @ v[:, 0])


@pytest.mark.parametrize("size", [(3, 4), (4, 3), (1, 5), (5, 1), (2, 2)])
def test_row_logits_equal_the_index_table(size):
    q, k, v, rel = _inputs(size, True, ("collect", "distribute"), seed=2)
    inputs = fused.Inputs(
        v, q, k, 0.5, (fused.Relative(0, "collect", *rel[:2]), fused.Relative(1, "distribute", *rel[2:]))
    )
    idx = relative_index(size)
    e1 = 0.5 * q @ k.transpose(1, 2)
    collect = (rel[0].flatten(1, 2) @ rel[1].t()).gather(-1, idx.expand(2, -1, -1))
    distribute = (rel[2].flatten(1, 2) @ rel[3].t()).gather(-1, idx.expand(2, -1, -1)).transpose(1, 2)
    h, w = size
    for row in range(h):
        got = fused.logits(inputs, size, row)  # (N, B, W, L)
        rows = slice(row * w, (row + 1) * w)
        torch.testing.assert_close(got[:, 0], (e1 + collect)[:, rows])
        torch.testing.assert_close(got[:, 1], (e1 + distribute)[:, rows])


@pytest.mark.parametrize("extra", [{}, {"chunk": 1}, {"checkpoint": False}], ids=["default", "chunk1", "keep"])
@pytest.mark.parametrize("variant,options", CASES, ids=IDS)
def test_gradients_match_reference(variant, options, extra):
    """d(loss)/d(every parameter and the input) of the block equal the slow reference's (float64)."""
    torch.manual_seed(0)
    m = randomised(build(variant, 8, (4, 5), **options, **extra).double()).train()
    x = torch.randn(2, 8, 4, 5, dtype=F64, requires_grad=True)
    weight = torch.randn(2, 8, 4, 5, dtype=F64)
    grads = []
    for forward in (m, lambda x: reference_forward(m, x)):
        m.zero_grad(set_to_none=True)
        x.grad = None
        (forward(x) * weight).sum().backward()
        grads.append({"x": x.grad, **{n: p.grad for n, p in m.named_parameters()}})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], atol=1e-5, rtol=0, msg=name)


def _saved_numels(module, x) -> list[int]:
    """Element counts of the tensors autograd keeps for backward during the forward pass."""
    numels = []

    def pack(t):
        numels.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return numels


@pytest.mark.parametrize("variant", ["joint", "pointwise", "joint_sum"])
def test_recompute_keeps_no_attention_matrix(variant):
    """With recomputation nothing near L x L is kept for backward; without, the probabilities are."""
    size, n = (12, 12), 2
    length = size[0] * size[1]
    x = torch.randn(n, 8, *size, requires_grad=True)
    lean = _saved_numels(build(variant, 8, size), x)
    keep = _saved_numels(build(variant, 8, size, checkpoint=False), x)
    assert max(lean) < length * length / 4
    assert sum(keep) - sum(lean) >= 2 * n * length * length  # both branches' probabilities


@pytest.mark.parametrize("variant,value_reduction", [("self", 2), ("self", 4), ("joint_sum", 4)])
def test_content_only_attention_keeps_no_attention_matrix(variant, value_reduction):
    """SDPA where its flash kernel applies (q and v of one width), the fused function otherwise."""
    size, n = (12, 12), 2
    length = size[0] * size[1]
    torch.manual_seed(0)
    m = randomised(build(variant, 8, size, value_reduction=value_reduction).double())
    x = torch.randn(n, 8, *size, dtype=F64, requires_grad=True)
    assert max(_saved_numels(m, x)) < length * length / 4
    torch.testing.assert_close(m(x), reference_forward(m, x), atol=1e-10, rtol=0)


def test_every_intermediate_is_chunk_sized():
    """No op of a forward+backward creates a tensor near the size of one L x L matrix."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    Largest.numel = max(Largest.numel, t.numel())
            return out

    size, n, chunk = (12, 12), 2, 12  # one image row of queries per chunk
    length = size[0] * size[1]
    m = randomised(build("joint", 8, size, chunk=chunk))
    x = torch.randn(n, 8, *size, requires_grad=True)
    with Largest():
        m(x).sum().backward()
    # a chunk's logits are n * chunk * L; a term's window product twice that
    assert 0 < Largest.numel <= 2 * n * chunk * length < n * length * length / 4


def test_bad_mode_is_rejected():
    v = torch.randn(1, 1, 4, 2)
    bad = fused.Relative(0, "sideways", torch.randn(1, 2, 2, 1), torch.randn(9, 1))
    with pytest.raises(ValueError, match="collect"):
        fused.attend(fused.Inputs(v, relative=(bad,)), (2, 2))


def test_benchmark_direct_implementation_equals_reference():
    """The benchmark's speed baseline computes the same blocks (else its ratios mean nothing)."""
    spec = importlib.util.spec_from_file_location("bench_attention", ROOT / "bench" / "bench_attention.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.check(channels=8, side=4)
