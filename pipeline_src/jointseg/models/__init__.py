"""Segmentation networks: DenseUNet, a plain U-Net and the cited baselines.

DenseUNet presets: ``paper`` (the first author's DACN DenseUNet exactly,
48.8 M parameters), ``small`` (the same topology for CPUs) and
``h_denseunet_hybrid`` (an earlier DenseNet-161 / H-DenseUNet-style
reconstruction, not the author's network); see ``denseunet``.
The cited baselines, each its source's network with ``paper`` (the source's
defaults) and ``small`` presets and no attention variant: ``unet_pp``
(UNet++), ``attention_unet`` (Attention U-Net), ``nonlocal_unet`` (Non-local
U-Net); see docs/science.md. ``build_model(...)`` is the single entry point (docs/design.md, "Models").
"""

from __future__ import annotations

from torch import nn

from .attention_unet import AttentionUNet
from .denseunet import PRESETS as DENSEUNET_PRESETS
from .denseunet import DenseUNet
from .nonlocal_unet import NonLocalUNet
from .unet import PRESETS as UNET_PRESETS
from .unet import UNet
from .unet_pp import UNetPlusPlus

ARCHS: dict[str, type[nn.Module]] = {
    "denseunet": DenseUNet,
    "unet": UNet,
    "unet_pp": UNetPlusPlus,
    "attention_unet": AttentionUNet,
    "nonlocal_unet": NonLocalUNet,
}


def build_model(
    arch: str = "denseunet",
    preset: str = "small",
    in_channels: int = 3,
    num_classes: int = 2,
    attention: str = "joint",
    attention_level: str | int = "bottleneck",
    input_size: tuple[int, int] = (64, 64),
    attention_options: dict | None = None,
    head_relu: bool | None = None,
) -> nn.Module:
    """Build ``arch`` with an attention block of ``attention`` variant at ``attention_level``.

    ``input_size`` is the training crop; the attention block is built for the
    feature size it implies and the model only accepts that input size.
    ``head_relu`` (DenseUNet only; None = the preset's choice) puts a ReLU on the
    logits, as DACN does; it clamps them at 0.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {sorted(ARCHS)}")
    if in_channels < 1 or num_classes < 2:
        raise ValueError(f"need in_channels >= 1 and num_classes >= 2, got {in_channels}, {num_classes}")
    overrides = {} if head_relu is None else {"head_relu": bool(head_relu)}
    return ARCHS[arch](
        preset=preset,
        in_channels=in_channels,
        num_classes=num_classes,
        attention=attention,
        attention_level=attention_level,
        input_size=tuple(input_size),
        attention_options=attention_options,
        **overrides,
    )


def model_kwargs(run_config: dict, manifest: dict) -> dict:
    """Arguments of :func:`build_model` for a run: its run config's ``model`` and ``size``, the manifest's
    channels and classes (stored in every checkpoint; the report counts parameters with them)."""
    m = run_config["model"]
    return {
        "arch": m["arch"],
        "preset": m["preset"],
        "in_channels": int(manifest["in_channels"]),
        "num_classes": int(manifest["num_classes"]),
        "attention": m["attention"],
        "attention_level": m["attention_level"],
        "input_size": [int(s) for s in run_config["size"]],
        "attention_options": dict(m["attention_options"]),
        # head_relu is a DenseUNet option (null = the preset's value); baselines ignore it
        **({"head_relu": m["head_relu"]} if m["arch"] == "denseunet" else {}),
    }


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "ARCHS",
    "DENSEUNET_PRESETS",
    "UNET_PRESETS",
    "AttentionUNet",
    "DenseUNet",
    "NonLocalUNet",
    "UNet",
    "UNetPlusPlus",
    "build_model",
    "count_parameters",
    "model_kwargs",
]
