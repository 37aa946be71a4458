"""Mixed precision: the attention's fp32 policy under autocast, amp choice, fp32 losses, the CPU fallback line.

CPU autocast (bf16 and fp16) stands in for CUDA's: the attention code path is
the same, and the capability queries of a GPU are monkeypatched.
"""

from __future__ import annotations

import pytest
import torch
from attention_helpers import NAMED

from jointseg import device
from jointseg.attention import build
from jointseg.config import load_config
from jointseg.io_utils import UserError
from jointseg.models import build_model
from jointseg.training import losses

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
LOW = [torch.bfloat16, torch.float16]
# every block with attention over positions that the variants build (NAMED: the precision option
# and maps are theirs; cbam is a gate), and PSANet's own structure
BLOCKS = [(v, {}) for v in NAMED] + [
    ("pointwise", {"structure": "psanet"}),
    ("joint", {"checkpoint": True}),  # the backward that recomputes the logits
]
BLOCK_IDS = [v + ("-" + "-".join(map(str, o.values())) if o else "") for v, o in BLOCKS]


def _block(variant: str, options: dict, precision: str = "fp32") -> torch.nn.Module:
    torch.manual_seed(0)
    block = build(variant, 8, (4, 4), precision=precision, **options)
    for gate in block.gates():  # open the gates, so the attention reaches the output
        torch.nn.init.constant_(gate, 0.5)
    return block


def _run(block: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None):
    """Output, attention map and (input, parameter) gradients, under CPU autocast when ``dtype``."""
    x = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        out = block(x)
        amap = block.attention_map(x, (1, 2))
    (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = [x.grad] + [p.grad for p in block.parameters() if p.grad is not None]
    block.zero_grad(set_to_none=True)
    return out, amap, grads


@pytest.mark.parametrize("dtype", LOW, ids=["bf16", "fp16"])
@pytest.mark.parametrize("variant,options", BLOCKS, ids=BLOCK_IDS)
def test_fp32_attention_under_autocast_equals_the_fp32_run(variant, options, dtype):
    """Issue 15 item 7: maps and outputs are fp32 and bit-equal to fp32; gradients too (the backward as well)."""
    block = _block(variant, options).train()
    x = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(1))
    ref_out, ref_map, ref_grads = _run(block, x, None)
    out, amap, grads = _run(block, x, dtype)
    assert out.dtype == amap.dtype == torch.float32
    assert torch.equal(out, ref_out) and torch.equal(amap, ref_map)
    assert len(grads) == len(ref_grads) > 2
    assert all(torch.equal(g, r) for g, r in zip(grads, ref_grads))


@pytest.mark.parametrize("dtype", LOW, ids=["bf16", "fp16"])
@pytest.mark.parametrize("variant,options", BLOCKS, ids=BLOCK_IDS)
def test_precision_autocast_follows_autocast(variant, options, dtype):
    """The opt-in: the block's matmuls in the autocast dtype; close to fp32, not equal; finite gradients."""
    block = _block(variant, options, precision="autocast").train()
    x = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(1))
    ref_out, ref_map, _ = _run(block, x, None)
    out, amap, grads = _run(block, x, dtype)
    assert amap.dtype == torch.float32  # maps are always handed out in fp32
    assert not torch.equal(amap, ref_map)
    torch.testing.assert_close(amap, ref_map, atol=0.02, rtol=0)
    torch.testing.assert_close(out.float(), ref_out, atol=0.1, rtol=0.05)
    assert all(torch.isfinite(g).all() for g in grads)


def test_the_fused_backward_inside_autocast_keeps_its_dtype():
    """A backward called inside autocast must not recast the recomputed logits (the `out=` buffers)."""
    block = _block("joint", {"checkpoint": True}, precision="autocast")
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        block(x).float().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.dtype == torch.float32


def test_a_network_under_autocast_hands_the_block_bf16_and_gets_fp32_back():
    model = build_model(attention="joint", input_size=(32, 32), attention_level=8)
    seen = []
    model.attention.register_forward_hook(lambda _m, args, out: seen.append((args[0].dtype, out.dtype)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(2, 3, 32, 32))
    assert seen == [(torch.bfloat16, torch.float32)]
    assert logits.shape == (2, 2, 32, 32) and torch.isfinite(logits).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amap = model.attention_map(torch.randn(1, 3, 32, 32), (1, 1))
    assert amap.dtype == torch.float32


def test_unknown_attention_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        build("joint", 8, (4, 4), precision="fp16")
    with pytest.raises(UserError, match="attention_options.precision"):
        load_config(ROOT / "config" / "config.yaml", {"model": {"attention_options": {"precision": "bf16"}}})


# ---------------------------------------------------------------------------------- amp choice


@pytest.mark.parametrize("native,expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_takes_bf16_only_where_the_gpu_has_it_natively(monkeypatch, native, expected):
    """V100/T4 emulate bf16 (is_bf16_supported() says yes): auto must take fp16 + GradScaler there."""
    asked = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return native or including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    chosen = device.select_precision(torch.device("cuda", 0), "auto")
    assert asked == [False]
    assert chosen.dtype is expected and chosen.scaler == (expected is torch.float16)
    assert chosen.name == {torch.bfloat16: "bf16", torch.float16: "fp16"}[expected]


def test_explicit_precisions_on_a_cpu():
    cpu = torch.device("cpu")
    assert device.select_precision(cpu, "auto").dtype is None  # the default path stays fp32
    assert device.select_precision(cpu, "bf16") == device.Precision(torch.bfloat16, False, True)
    assert device.select_precision(cpu, "fp16") == device.Precision(torch.float16, True, True)
    with pytest.raises(UserError, match="unknown value 'half'"):
        device.select_precision(cpu, "half")


# ---------------------------------------------------------------------------------- losses


@pytest.mark.parametrize("name", losses.LOSSES)
def test_losses_are_fp32_and_their_scaled_gradient_is_finite_in_fp16(name):
    """GradScaler's first scale is 2^16 > fp16's largest value: an fp16 loss would give inf gradients."""
    gen = torch.Generator().manual_seed(0)
    logits32 = torch.randn(2, 3, 8, 8, generator=gen)
    target = torch.randint(0, 3, (2, 8, 8), generator=gen)
    loss_fn = losses.build_loss(name)
    logits = logits32.half().requires_grad_()
    loss = loss_fn(logits, target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(loss_fn(logits.detach().float(), target).item(), abs=1e-6)
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(loss).backward()
    assert scaler.get_scale() == 2.0**16 and torch.isfinite(logits.grad).all()


# ---------------------------------------------------------------------------------- devices and options


def test_an_assigned_gpu_that_torch_cannot_see_is_one_line_and_the_cpu(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-4f2a")
    assert device.select_device("auto") == torch.device("cpu")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "CUDA_VISIBLE_DEVICES=GPU-4f2a" in lines[0] and "running on the CPU" in lines[0]
    for hidden in ("", "NoDevFiles", "-1"):  # no GPU was assigned: nothing to say
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert device.select_device("auto") == torch.device("cpu")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    device.select_device("auto")
    assert capsys.readouterr().err == ""


def test_more_than_one_gpu_per_job_is_refused():
    for ok in (None, 0, 1):
        assert load_config(ROOT / "config" / "config.yaml", {"gpus_per_job": ok})["gpus_per_job"] == ok
    with pytest.raises(UserError, match=r"'gpus_per_job': 2; training and inference use one GPU"):
        load_config(ROOT / "config" / "config.yaml", {"gpus_per_job": 2})
