"""Segmentation networks: DenseUNet, a plain U-Net and the cited baselines.

DenseUNet presets: ``paper`` (the first author's DACN DenseUNet exactly,
48.8 M parameters), ``small`` (the same topology for CPUs) and
``h_denseunet_hybrid`` (an earlier DenseNet-161 / H-DenseUNet-style
reconstruction, not the author's network); see ``denseunet``.
The cited baselines, each its source's network with ``paper`` (the source's
defaults) and ``small`` presets and no attention variant: ``unet_pp``
(UNet++), ``attention_unet`` (Attention U-Net), ``nonlocal_unet`` (Non-local
U-Net); see docs/science.md. Which networks exist, with their presets and roles, is
the registry :data:`jointseg.architectures.ARCHITECTURES`; ``build_model(...)`` is the
single entry point (docs/design.md, "Models").
"""

from __future__ import annotations

import importlib

from torch import nn

from ..architectures import ARCHITECTURES


def network_class(arch: str) -> type[nn.Module]:
    """The class of architecture ``arch``: its registry entry's ``module:Class``, imported now
    (a module starting with ``.`` is relative to this package)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; choose from {sorted(ARCHITECTURES)}")
    module, _, name = ARCHITECTURES[arch].network.partition(":")
    return getattr(importlib.import_module(module, package=__name__), name)


def build_model(
    arch: str = "denseunet",
    preset: str = "small",
    in_channels: int = 3,
    num_classes: int = 2,
    attention: str = "joint",
    attention_level: str | int = "bottleneck",
    input_size: tuple[int, int] = (64, 64),
    attention_options: dict | None = None,
    **options,
) -> nn.Module:
    """Build ``arch`` with an attention block of ``attention`` variant at ``attention_level``.

    ``input_size`` is the training crop; the attention block is built for the
    feature size it implies and the model only accepts that input size.
    ``options`` are the architecture's own settings (its registry entry's ``options``;
    ``None`` = the preset's value), e.g. DenseUNet's ``head_relu``: a ReLU on the
    logits, as DACN has, which clamps them at 0.
    """
    cls = network_class(arch)
    unknown = sorted(set(options) - set(ARCHITECTURES[arch].options))
    if unknown:
        raise ValueError(f"arch {arch!r} takes no option(s) {unknown}; it takes {list(ARCHITECTURES[arch].options)}")
    if in_channels < 1 or num_classes < 2:
        raise ValueError(f"need in_channels >= 1 and num_classes >= 2, got {in_channels}, {num_classes}")
    return cls(
        preset=preset,
        in_channels=in_channels,
        num_classes=num_classes,
        attention=attention,
        attention_level=attention_level,
        input_size=tuple(input_size),
        attention_options=attention_options,
        **{key: value for key, value in options.items() if value is not None},
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
        # the architecture's own settings (DenseUNet: head_relu, null = the preset's value)
        **{key: m[key] for key in ARCHITECTURES[m["arch"]].options},
    }


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["build_model", "count_parameters", "model_kwargs", "network_class"]
