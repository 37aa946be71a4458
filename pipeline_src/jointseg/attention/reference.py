"""Slow, obvious reference of every attention form, straight from the equations.

Used only by tests and benchmarks. It reads the parameters of a fast block
(``reference_forward(module, x)``), computes PSANet's full M-channel maps with
a plain einsum and places them with a direct port of PSANet's ``psamask`` CPU
loops, and materialises every L x L matrix. The PSANet structure follows the
order of semseg's ``PSA.forward`` (psa_mask, softmax over dim 1, bmm).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import block_of
from .module import JointAttention
from .psanet import PSABlock


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


def _conv1x1(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """A 1x1 conv as an einsum -> (N, C_out, L)."""
    y = torch.einsum("oc,ncl->nol", conv.weight[:, :, 0, 0], x.flatten(2))
    return y if conv.bias is None else y + conv.bias[None, :, None]


def _psa_buffer(weight: Tensor, hidden: Tensor, branch: str) -> Tensor:
    """PSANet: the full M-channel map F = W_F hidden (no bias), placed by psamask.

    Returns semseg's buffer (N, L, L) indexed [n, key j, query i].
    """
    n, _, height, width = hidden.shape
    fmap = torch.einsum("mc,nchw->nmhw", weight, hidden)
    return psamask_loops(fmap, branch).reshape(n, height * width, height * width)


def reference_logits(module: JointAttention, x: Tensor) -> dict[str, list[Tensor]]:
    """Per branch, the (N, L, L) logits of each term of ``module.terms``, row i = query i."""
    n, _, height, width = x.shape
    length = height * width
    theta = _conv1x1(module.query, x) if module.query is not None else None  # (N, C', L)
    phi = _conv1x1(module.key, x) if module.key is not None else None
    # embedded Gaussian (non-local): no factor; "sqrt": the Transformer's 1/sqrt(C')
    factor = theta.shape[1] ** -0.5 if theta is not None and module.e1_scale == "sqrt" else 1.0
    out: dict[str, list[Tensor]] = {}
    for branch in module.branches:
        logits: list[Tensor] = []
        for term in module.terms:
            if term == "E1":  # theta(x_i)^T phi(x_j) * factor
                logits.append(torch.einsum("nci,ncj->nij", theta, phi) * factor)
            elif term == "E2":
                pred = module.predictors[branch]
                logits.append(_psa_buffer(pred.weight, pred.hidden(x), branch).transpose(1, 2))
            elif term == "E3":  # u^T phi(x_j)
                e3 = torch.einsum("c,ncj->nj", module.key_vector, phi)
                logits.append(e3[:, None, :].expand(n, length, length))
            else:  # v_{j-i}: the same offset map at every position, placed like collect
                fmap = module.position_bias[None, :, None, None].expand(1, -1, height, width)
                logits.append(
                    psamask_loops(fmap, "collect").reshape(1, length, length).transpose(1, 2).expand(n, -1, -1)
                )
        out[branch] = logits
    return out


def _psanet_branches(module: PSABlock, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """semseg's PSA.forward per branch: (probabilities (N, L, L) [n, j, i], outputs (N, C_r, H, W))."""
    n, _, height, width = x.shape
    length = height * width
    probs, outs = [], []
    for branch in module.branches:
        reduced = module.reduce[branch](x)  # semseg: self.reduce / self.reduce_p
        pred = module.predictors[branch]  # semseg: self.attention / self.attention_p
        y = torch.softmax(_psa_buffer(pred.weight, pred.hidden(reduced), branch), dim=1)
        probs.append(y)
        outs.append(torch.bmm(reduced.view(n, -1, length), y).view(n, -1, height, width))
    return probs, outs


def _unified_probabilities(module: JointAttention, x: Tensor) -> Tensor:
    probs = []
    for logits in reference_logits(module, x).values():
        if module.combine == "joint":
            probs.append(torch.softmax(torch.stack(logits).sum(0), dim=-1))
        else:  # "sum"
            probs.append(torch.stack([torch.softmax(t, dim=-1) for t in logits]).mean(0))
    return torch.stack(probs, dim=1)


def _unified_forward(module: JointAttention, x: Tensor) -> Tensor:
    n, _, height, width = x.shape  # y = x + BN(W_o [A_b V_b]_b)
    probs = reference_probabilities(module, x)  # (N, B, L, L)
    value = _conv1x1(module.value, x).view(n, len(module.branches), -1, height * width)  # (N,B,Cv,L)
    agg = torch.einsum("nbij,nbcj->nbci", probs, value).reshape(n, -1, height, width)
    return x + module.out_norm(module.out(agg))


def _parts_probabilities(module: nn.Module, x: Tensor) -> Tensor:
    return torch.cat([reference_probabilities(p, x) for p in module.parts], dim=1)


def _parts_forward(module: nn.Module, x: Tensor) -> Tensor:  # y = x + sum_p (p(x) - x)
    return x + sum(reference_forward(p, x) - x for p in module.parts)


def _psanet_probabilities(module: PSABlock, x: Tensor) -> Tensor:
    return torch.stack([p.transpose(1, 2) for p in _psanet_branches(module, x)[0]], dim=1)


def _psanet_forward(module: PSABlock, x: Tensor) -> Tensor:  # y = fuse([x, proj([o_b]_b)])
    return module.fuse(torch.cat([x, module.proj(torch.cat(_psanet_branches(module, x)[1], 1))], 1))


# block (the registry's name) -> (its attention matrices, its output), from the equations; a block
# without attention over positions (cbam) has no entry
REFERENCES = {
    "unified": (_unified_probabilities, _unified_forward),
    "psanet": (_psanet_probabilities, _psanet_forward),
    "parallel": (_parts_probabilities, _parts_forward),
    "self_heads": (_parts_probabilities, _parts_forward),
}


def reference_probabilities(module: nn.Module, x: Tensor) -> Tensor:
    """All attention matrices (N, B, L, L), row i = query i, from the equations."""
    return REFERENCES[block_of(module)][0](module, x)


def reference_forward(module: nn.Module, x: Tensor) -> Tensor:
    """The block's output with every matrix materialised."""
    return REFERENCES[block_of(module)][1](module, x)
