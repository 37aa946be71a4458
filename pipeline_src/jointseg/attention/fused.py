"""Fused, chunked attention with relative-position logits (FlashAttention-style, CPU).

For the queries i of a chunk of whole image rows and every branch b,

    s_b(i, j) = scale * q_i . k_j + sum_t R_t(i, j),    o_b(i) = sum_j softmax_j(s_b)(i, j) v_b(j).

A relative term t of branch b has features z (N, H, W, C) and a weight (M, C)
over the M = (2H-1)(2W-1) offsets, laid out as the offset grid (2H-1, 2W-1)
with offset 0 at (H-1, W-1) (psamask.py):

    collect     R(i, j) = weight[j - i] . z_i    (PSANet: predicted at the query)
    distribute  R(i, j) = weight[i - j] . z_j    (PSANet: predicted at the key)

Neither PSANet's (N, M, L) map nor any L x L matrix is built. Query row a only
reaches the grid rows [H-1-a, 2H-1-a) (collect), and for the query rows
a0 .. a0+k-1 key row b only reaches [a0-b+H-1, a0-b+H-1+k) (distribute): each
feature row meets its window in one batched matmul, and the logits are a
strided view of the product (the "skewing" of relative attention); no index
table is read. A window row has 2W-1 columns of which a query uses W, so this
costs about two C-dot products per logit, half of PSANet's M-channel map.

A chunk holds whole rows of the attention (all keys), so unlike FlashAttention,
which tiles the keys too, no running log-sum-exp is needed: the forward keeps
only its inputs and output, and the backward recomputes each chunk's logits and
softmax exactly. The peak memory is O(chunk * L) instead of O(L^2). With
``recompute=False`` the forward keeps the probabilities instead: O(L^2)
memory, no recomputation.

Precision: one dtype, autocast's inside an autocast region, else the value's;
:func:`attend` casts the inputs to it and runs with autocast off, forward and
backward, so the recomputed logits and the reused ``out=`` buffers (which
autocast does not convert) match. Low-precision logits get an fp32 softmax, as
under autocast. By default the blocks call it in fp32 outside autocast (base.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

MODES = ("collect", "distribute")


@dataclass(frozen=True)
class Relative:
    """One relative-position term: ``mode`` in MODES, added to the logits of ``branch``."""

    branch: int
    mode: str
    features: Tensor  # z (N, H, W, C)
    weight: Tensor  # (M, C)


@dataclass(frozen=True)
class Inputs:
    """What one attention needs: value (N, B, L, Cv), optional content q/k (N, L, C'), relative terms."""

    value: Tensor
    query: Tensor | None = None
    key: Tensor | None = None
    scale: float = 1.0
    relative: tuple[Relative, ...] = ()


@dataclass(frozen=True)
class _Plan:
    size: tuple[int, int]
    rows: int  # image rows per chunk
    keep: bool  # keep the probabilities instead of recomputing them
    scale: float
    terms: tuple[tuple[int, str], ...]  # (branch, mode) of each relative term


def _window(mode: str, size: tuple[int, int], a0: int, rows: int, device) -> tuple[slice, Tensor]:
    """Feature rows of the chunk's term and the (G, R) grid rows each of them meets."""
    height = size[0]
    if mode == "collect":  # feature row a = query row, grid rows H-1-a + t, t < H
        starts = torch.arange(height - 1 - a0, height - 1 - a0 - rows, -1, device=device)
        return slice(a0, a0 + rows), starts[:, None] + torch.arange(height, device=device)
    # feature row b = key row, grid rows a0-b+H-1 + r, r < rows (query row a0 + r)
    starts = torch.arange(a0 + height - 1, a0 - 1, -1, device=device)
    return slice(0, height), starts[:, None] + torch.arange(rows, device=device)


def _skew(partial: Tensor, mode: str, size: tuple[int, int], rows: int) -> Tensor:
    """The logits (N, rows, W, H, W) [query row, query col, key row, key col] as a view of ``partial``.

    partial (G, N, W, R*(2W-1)) = feature row g, image n, column w, window row,
    grid column; key column w_j and query column w_i meet at grid column
    w_j - w_i + W-1 (collect) or w_i - w_j + W-1 (distribute).
    """
    height, width = size
    grid_w, n, row = 2 * width - 1, partial.shape[1], partial.shape[-1]
    if mode == "collect":  # [n, a, w_i, h_j, w_j] -> partial[a, n, w_i, h_j * P + w_j - w_i + W-1]
        stride = (width * row, n * width * row, row - 1, grid_w, 1)
    else:  # [n, r, w_i, b, w_j] -> partial[b, n, w_j, r * P + w_i - w_j + W-1]
        stride = (width * row, grid_w, 1, n * width * row, row - 1)
    return partial.as_strided((n, rows, width, height, width), stride, partial.storage_offset() + width - 1)


def _parts(plan: _Plan, rel, branch: int, a0: int, rows: int) -> list:
    """Per relative term of ``branch``: (index, feature rows, z (G, N*W, C), windows (G, R*(2W-1), C), grid rows)."""
    parts = []
    for t, (b, mode) in enumerate(plan.terms):
        if b == branch:
            features, weight = rel[2 * t], rel[2 * t + 1]
            rows_of, grid_rows = _window(mode, plan.size, a0, rows, weight.device)
            z = features[:, rows_of].transpose(0, 1).flatten(1, 2)  # (G, N*W, C): one bmm, no broadcast copy
            grid = weight.view(2 * plan.size[0] - 1, 2 * plan.size[1] - 1, -1)
            parts.append((t, rows_of, z, grid[grid_rows].flatten(1, 2), grid_rows))
    return parts


def _product(z: Tensor, win: Tensor, scratch: dict | None) -> Tensor:
    """z @ win^T -> (G, N*W, R*(2W-1)); into ``scratch``'s buffer when given (no autograd then).

    Reusing one buffer spares a fresh, page-faulting allocation per chunk and term.
    """
    if scratch is None:
        return torch.bmm(z, win.transpose(1, 2))
    shape = (z.shape[0], z.shape[1], win.shape[1])
    size = shape[0] * shape[1] * shape[2]
    if scratch.get("partial") is None or scratch["partial"].numel() < size:
        scratch["partial"] = z.new_empty(size)
    return torch.bmm(z, win.transpose(1, 2), out=scratch["partial"][:size].view(shape))


def _softmax(logits: Tensor) -> Tensor:
    """softmax over the keys; low-precision logits are normalised in fp32 (as autocast does)."""
    if logits.dtype not in (torch.bfloat16, torch.float16):
        return torch.softmax(logits, dim=-1)
    return torch.softmax(logits, dim=-1, dtype=torch.float32).to(logits.dtype)


def _branch_logits(
    plan: _Plan, base: Tensor | None, rel, n: int, branch: int, a0: int, rows: int, scratch: dict | None = None
):
    """Logits (N, rows*W, L) of ``branch`` for query rows a0..a0+rows-1, and each term's parts."""
    height, width = plan.size
    logits = None if base is None else base.view(n, rows, width, height, width)
    parts = _parts(plan, rel, branch, a0, rows)
    for t, _, z, win, _ in parts:
        partial = _product(z, win, scratch).view(z.shape[0], n, width, -1)
        view = _skew(partial, plan.terms[t][1], plan.size, rows)
        logits = view.contiguous() if logits is None else logits + view  # base first: a contiguous sum
    if not parts:  # content only
        logits = base.clone()
    return logits.view(n, rows * width, height * width), parts


def _content(plan: _Plan, q: Tensor | None, k: Tensor | None, queries: slice) -> Tensor | None:
    return None if q is None else torch.matmul(q[:, queries] * plan.scale, k.transpose(1, 2))


def _relative_backward(ds: Tensor, part, plan: _Plan, rows: int, drel: list, buffers: dict) -> None:
    """Add one term's share of dlogits ``ds`` (N, q, L) to its feature and weight gradients."""
    t, rows_of, z, win, grid_rows = part
    n, height, width = ds.shape[0], *plan.size
    shape = (z.shape[0], n, width, win.shape[1])
    if (t, shape) not in buffers:  # every chunk writes the same skewed entries: the rest stays zero
        buffers[t, shape] = ds.new_zeros(shape)
    dpartial = buffers[t, shape]
    _skew(dpartial, plan.terms[t][1], plan.size, rows).copy_(ds.view(n, rows, width, height, width))
    dpartial = dpartial.flatten(1, 2)  # (G, N*W, R*(2W-1))
    dz, dweight = drel[2 * t], drel[2 * t + 1]
    if dz is not None:
        dz[:, rows_of] += torch.bmm(dpartial, win).view(-1, n, width, win.shape[2]).transpose(0, 1)
    if dweight is not None:
        dwin = torch.bmm(dpartial.transpose(1, 2), z)  # (G, R*(2W-1), C); windows overlap: index_add
        dweight.view(2 * height - 1, -1).index_add_(0, grid_rows.flatten(), dwin.view(grid_rows.numel(), -1))


def _chunks(plan: _Plan):
    height, width = plan.size
    for a0 in range(0, height, plan.rows):
        rows = min(plan.rows, height - a0)
        yield a0, rows, slice(a0 * width, (a0 + rows) * width)


class _FusedAttention(torch.autograd.Function):
    """The outputs (N, B, L, Cv) of ``Inputs``; see the module docstring."""

    @staticmethod
    def forward(ctx, plan: _Plan, q, k, v, *rel):
        n, branches = v.shape[:2]
        out, kept, scratch = torch.empty_like(v), [], {}
        for a0, rows, queries in _chunks(plan):
            base = _content(plan, q, k, queries)
            for b in range(branches):
                p = _softmax(_branch_logits(plan, base, rel, n, b, a0, rows, scratch)[0])
                out[:, b, queries] = torch.bmm(p, v[:, b])
                if plan.keep:
                    kept.append(p)
        ctx.plan = plan
        ctx.save_for_backward(q, k, v, out, *rel, *kept)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        # a backward called inside autocast must not recast the recomputation (see the module docstring)
        with torch.autocast(dout.device.type, enabled=False):
            return _FusedAttention._backward(ctx, dout.to(ctx.saved_tensors[2].dtype))

    @staticmethod
    def _backward(ctx, dout):
        plan = ctx.plan
        q, k, v, out, *rest = ctx.saved_tensors
        rel, kept = rest[: 2 * len(plan.terms)], iter(rest[2 * len(plan.terms) :])
        n, branches, need = v.shape[0], v.shape[1], ctx.needs_input_grad
        dq, dk = (torch.zeros_like(t) if need[i] else None for i, t in ((1, q), (2, k)))
        dv = [torch.zeros_like(v[:, b]) for b in range(branches)] if need[3] else None
        drel = [torch.zeros_like(t) if need[4 + i] else None for i, t in enumerate(rel)]
        # dlogits = p * (dout . v_j - dout . out_i): the row constant rides in the matmul as one more channel
        dout_aug = torch.cat([dout, -(dout * out).sum(-1, keepdim=True)], dim=-1)
        v_aug = torch.cat([v, v.new_ones(v.shape[:-1] + (1,))], dim=-1).transpose(2, 3)
        buffers: dict = {}
        for a0, rows, queries in _chunks(plan):
            base = None if plan.keep else _content(plan, q, k, queries)
            ds_content = None
            for b in range(branches):
                if plan.keep:
                    p, parts = next(kept), _parts(plan, rel, b, a0, rows)
                else:
                    s, parts = _branch_logits(plan, base, rel, n, b, a0, rows, buffers)
                    p = _softmax(s)
                    del s
                if dv is not None:
                    dv[b].baddbmm_(p.transpose(1, 2), dout[:, b, queries])
                ds = torch.bmm(dout_aug[:, b, queries], v_aug[:, b]).mul_(p)
                del p
                for part in parts:
                    _relative_backward(ds, part, plan, rows, drel, buffers)
                if q is not None:
                    ds_content = ds if ds_content is None else ds_content.add_(ds)
            if dq is not None:
                dq[:, queries] = torch.bmm(ds_content, k).mul_(plan.scale)
            if dk is not None:
                dk.baddbmm_(ds_content.transpose(1, 2), q[:, queries], alpha=plan.scale)
        return None, dq, dk, None if dv is None else torch.stack(dv, dim=1), *drel


def compute_dtype(inputs: Inputs) -> torch.dtype:
    """The one dtype the attention computes in: autocast's inside an autocast region, else the value's."""
    device = inputs.value.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else inputs.value.dtype


def _prepare(inputs: Inputs) -> tuple[Tensor | None, Tensor | None, Tensor, list[Tensor]]:
    """q, k, v and the flat [features, weight, ...] list of the relative terms: contiguous, in
    :func:`compute_dtype` (the casts are no-ops where a tensor already has it)."""
    dtype = compute_dtype(inputs)
    q, k = (None if t is None else t.to(dtype).contiguous() for t in (inputs.query, inputs.key))
    rel = [t.to(dtype).contiguous() for r in inputs.relative for t in (r.features, r.weight)]
    return q, k, inputs.value.to(dtype).contiguous(), rel


def attend(inputs: Inputs, size: tuple[int, int], chunk: int = 512, recompute: bool = True) -> Tensor:
    """sum_j softmax_j(s_b(i, j)) v_b(j) for all queries -> (N, B, L, Cv).

    Content only (no relative term) with q and v of one width: PyTorch's
    scaled_dot_product_attention. Otherwise the chunked fused function with
    ``chunk`` queries (rounded to whole image rows) per chunk.
    """
    if any(r.mode not in MODES for r in inputs.relative):
        raise ValueError(f"relative modes must be in {MODES}")
    q, k, v, rel = _prepare(inputs)  # before autocast is switched off: it names the dtype
    with torch.autocast(v.device.type, enabled=False):
        if not rel and q.shape[-1] == v.shape[-1]:
            # one head per branch, sharing q and k. The CPU flash kernel needs equal q/v
            # widths and unit stride on the channel dim; otherwise SDPA silently falls
            # back to the L x L math path (hence the fused function for unequal widths)
            shape = (v.shape[0], v.shape[1], *q.shape[1:])
            return F.scaled_dot_product_attention(
                q[:, None].expand(shape), k[:, None].expand(shape), v, scale=inputs.scale
            )
        grads = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, *rel))
        plan = _Plan(
            tuple(size),
            max(1, chunk // size[1]),
            grads and not recompute,
            float(inputs.scale),
            tuple((r.branch, r.mode) for r in inputs.relative),
        )
        return _FusedAttention.apply(plan, q, k, v, *rel)


def logits(inputs: Inputs, size: tuple[int, int], row: int) -> Tensor:
    """The logits (N, B, W, L) of the queries in image row ``row`` (the ones ``attend`` uses), at least fp32."""
    plan = _Plan(tuple(size), 1, False, float(inputs.scale), tuple((r.branch, r.mode) for r in inputs.relative))
    q, k, v, rel = _prepare(inputs)
    with torch.autocast(v.device.type, enabled=False):
        base = _content(plan, q, k, slice(row * size[1], (row + 1) * size[1]))
        out = torch.stack([_branch_logits(plan, base, rel, v.shape[0], b, row, 1)[0] for b in range(v.shape[1])], 1)
    return out.to(torch.promote_types(out.dtype, torch.float32))  # low precision: upcast for the softmax
