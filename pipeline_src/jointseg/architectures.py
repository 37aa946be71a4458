"""The networks a study trains, by name: one plain dict, the architecture registry.

Kept free of torch (like :mod:`jointseg.variants`) so that config validation, which
Snakemake runs before any job, and the command line's help can read it. Everything
that lists networks derives from :data:`ARCHITECTURES`: the schema's enums of
``model.arch``, ``model.preset`` and ``baselines`` (:func:`jointseg.config.schema`),
``config/README.md``, ``jointseg resolve --help``, the claims table's comparators
(:func:`jointseg.reporting.claims.claims`) and :func:`jointseg.models.build_model`,
which imports ``network`` only when it builds one.

Run names live in two name spaces that never overlap (a test checks it): an
attention variant (a key of :data:`jointseg.variants.VARIANTS`) is trained inside
``model.arch``; an architecture listed under ``baselines`` is trained as it is, with
attention ``none``. A new network is its model file plus one line here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .variants import CITED as CITED_VARIANTS


@dataclass(frozen=True)
class Architecture:
    """One network: where its class is, its presets, and the roles it may take in a study."""

    network: str  # "module:Class"; a module starting with "." is one of jointseg.models
    presets: tuple[str, ...]  # the keys of its PRESETS, the first the CPU-sized one
    summary: str  # one line for the schema, `jointseg resolve --help` and config/README.md
    attention: bool  # carries an attention variant (may be `model.arch`)
    baseline: bool = True  # may be listed under `baselines` (trained with attention "none")
    cited: bool = False  # a cited comparator: the claims table tests joint against it (sota_<name>)
    options: tuple[str, ...] = ()  # `model` settings it takes besides the common ones (passed when set)


ARCHITECTURES: dict[str, Architecture] = {
    "denseunet": Architecture(
        ".denseunet:DenseUNet",
        ("small", "paper", "h_denseunet_hybrid"),
        "DenseUNet, the paper's network with the attention block (paper = the first author's DACN exactly; "
        "h_denseunet_hybrid = a DenseNet-161 / H-DenseUNet-style reconstruction, not the author's)",
        attention=True,
        baseline=False,
        options=("head_relu",),
    ),
    "unet": Architecture(".unet:UNet", ("small", "paper"), "a plain U-Net (BN, bilinear up-sampling)", attention=True),
    "unet_pp": Architecture(
        ".unet_pp:UNetPlusPlus", ("small", "paper"), "UNet++ (Zhou et al. 2018)", False, cited=True
    ),
    "attention_unet": Architecture(
        ".attention_unet:AttentionUNet", ("small", "paper"), "Attention U-Net (Oktay et al. 2018)", False, cited=True
    ),
    "nonlocal_unet": Architecture(
        ".nonlocal_unet:NonLocalUNet", ("small", "paper"), "Non-local U-Net (Wang et al. 2020)", False, cited=True
    ),
}


def baselines() -> tuple[str, ...]:
    """The architectures a study may list under ``baselines``, in registry order."""
    return tuple(name for name, a in ARCHITECTURES.items() if a.baseline)


def cited() -> tuple[str, ...]:
    """The cited comparators: the cited architectures, then the cited attention variants."""
    return (*(name for name, a in ARCHITECTURES.items() if a.cited), *CITED_VARIANTS)


def presets() -> tuple[str, ...]:
    """Every preset name of any architecture, each once, in registry order."""
    return tuple(dict.fromkeys(p for a in ARCHITECTURES.values() for p in a.presets))
