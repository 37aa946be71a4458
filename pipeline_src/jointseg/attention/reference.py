"""Slow, obvious reference of the unified attention, straight from the equations.

Used only by tests and benchmarks. It reads the parameters of a fast
``JointAttention`` (``reference_forward(module, x)``), computes PSANet's full
M-channel maps with a plain conv and places them with a direct port of
PSANet's ``psamask`` CPU loops, and materialises every L x L matrix.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .module import JointAttention


def psamask_loops(mask: Tensor, mode: str) -> Tensor:
    """Port of PSANet's psamask_{collect,distribute}_forward (semseg, cpu/operator.cpp).

    mask: (N, (2H-1)(2W-1), H, W), one offset map per position. Returns the
    buffer (N, H*W, H, W) of the C++ code; entries no position reaches are 0.
    """
    n, _, height, width = mask.shape
    mask_h, mask_w = 2 * height - 1, 2 * width - 1
    half_h, half_w = height - 1, width - 1
    if mode not in ("collect", "distribute"):
        raise ValueError(f"mode must be collect or distribute, got {mode!r}")
    # The loops only decide which mask entry lands where; record those flat
    # indices (as the C++ code computes them) and copy once, so autograd sees
    # one indexing op instead of H*W chained slice writes.
    src, dst = [], []
    for h in range(height):
        for w in range(width):
            hstart, hend = max(0, half_h - h), min(mask_h, height + half_h - h)
            wstart, wend = max(0, half_w - w), min(mask_w, width + half_w - w)
            hidx = torch.arange(hstart, hend)[:, None]
            widx = torch.arange(wstart, wend)[None, :]
            fh, fw = hidx + h - half_h, widx + w - half_w  # feature-indexed
            # mask_data[((n*mask_H + hidx)*mask_W + widx)*H*W + h*W + w]
            src.append(((hidx * mask_w + widx) * height + h) * width + w)
            if mode == "collect":
                # buffer_data[(n*H*W + fh*W + fw)*H*W + h*W + w]
                dst.append((fh * width + fw) * height * width + h * width + w)
            else:
                # buffer_data[(n*H*W + h*W + w)*H*W + fh*W + fw]
                dst.append((h * width + w) * height * width + fh * width + fw)
    src_idx = torch.cat([s.flatten() for s in src]).to(mask.device)
    dst_idx = torch.cat([d.flatten() for d in dst]).to(mask.device)
    buf = mask.new_zeros(n, (height * width) ** 2)
    buf = buf.index_put((torch.arange(n)[:, None], dst_idx[None, :]), mask.reshape(n, -1)[:, src_idx])
    return buf.reshape(n, height * width, height, width)


def _conv1x1(conv: torch.nn.Conv2d, x: Tensor) -> Tensor:
    """A 1x1 conv as an einsum -> (N, C_out, L)."""
    y = torch.einsum("oc,ncl->nol", conv.weight[:, :, 0, 0], x.flatten(2))
    return y if conv.bias is None else y + conv.bias[None, :, None]


def reference_probabilities(module: JointAttention, x: Tensor) -> Tensor:
    """All attention matrices (N, B, L, L), row i = query i, from the equations."""
    n, _, height, width = x.shape
    length = height * width
    theta = _conv1x1(module.query, x) if module.query is not None else None  # (N, C', L)
    phi = _conv1x1(module.key, x) if module.key is not None else None
    probs = []
    for branch in module.branches:
        logits: list[Tensor] = []
        for term in module.terms:
            if term == "E1":  # theta(x_i)^T phi(x_j) / sqrt(C')
                logits.append(torch.einsum("nci,ncj->nij", theta, phi) / math.sqrt(theta.shape[1]))
            elif term == "E2":  # PSANet: full M-channel F, placed by psamask
                pred = module.predictors[branch]
                hidden = pred.hidden(x)
                fmap = torch.einsum("mc,nchw->nmhw", pred.weight, hidden) + pred.bias[None, :, None, None]
                buf = psamask_loops(fmap, branch).reshape(n, length, length)  # [n, j, i]
                logits.append(buf.transpose(1, 2))
            elif term == "E3":  # u^T phi(x_j)
                logits.append(torch.einsum("c,ncj->nj", module.key_vector, phi)[:, None, :].expand(n, length, length))
            else:  # v_{j-i}: the same offset map at every position, placed like collect
                fmap = module.position_bias[None, :, None, None].expand(1, -1, height, width)
                logits.append(psamask_loops(fmap, "collect").reshape(1, length, length).transpose(1, 2).expand(n, -1, -1))
        if module.combine == "joint":
            p = torch.softmax(torch.stack(logits).sum(0), dim=-1)
        elif module.combine == "sum":
            p = torch.stack([torch.softmax(t, dim=-1) for t in logits]).mean(0)
        else:
            p = torch.stack([torch.softmax(t, dim=-1) for t in logits]).prod(0)
            p = p / p.sum(-1, keepdim=True)
        probs.append(p)
    return torch.stack(probs, dim=1)


def reference_forward(module: JointAttention, x: Tensor) -> Tensor:
    """y = x + BN(W_o [A_b V_b]_b) with every matrix materialised."""
    n, _, height, width = x.shape
    probs = reference_probabilities(module, x)  # (N, B, L, L)
    value = _conv1x1(module.value, x).view(n, len(module.branches), -1, height * width)  # (N,B,Cv,L)
    agg = torch.einsum("nbij,nbcj->nbci", probs, value).reshape(n, -1, height, width)
    return x + module.out_norm(module.out(agg))
