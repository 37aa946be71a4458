"""The attention blocks by name: one plain dict, the block registry (as timm's ``create_attn``).

A variant (:data:`jointseg.variants.VARIANTS`, torch-free) is options; its ``block``
key names the class that builds them (:func:`block_name`: the unified block unless
it says otherwise, PSANet's own for a point-wise-only term set under ``structure:
psanet``). Every class here has ``from_options(channels, size, variant, build,
**options)``; ``build`` is :func:`build` itself, for blocks made of other variants.
A new block is its module (a class with ``from_options``) and one line in
:data:`BLOCKS`; a new term set of the unified block is one line in ``VARIANTS``.
"""

from __future__ import annotations

from torch import nn

from ..variants import VARIANTS
from . import terms as T
from .base import NoAttention
from .cbam import CBAM
from .heads import SelfHeads
from .module import JointAttention
from .parallel import ParallelAttention
from .psanet import PSABlock

BLOCKS: dict[str, type[nn.Module]] = {
    "unified": JointAttention,
    "psanet": PSABlock,
    "parallel": ParallelAttention,
    "self_heads": SelfHeads,
    "cbam": CBAM,
}
STRUCTURES = ("unified", "psanet")


def block_name(spec: dict) -> str:
    """The registry name of the block that a variant's options (``spec``) build."""
    if "block" in spec:
        return spec["block"]
    structure = spec.get("structure", "unified")
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")
    return "psanet" if structure == "psanet" and tuple(spec.get("terms", ())) == ("E2",) else "unified"


def block_of(module: nn.Module) -> str:
    """The registry name of a built block: its nearest registered class."""
    names = {cls: name for name, cls in BLOCKS.items()}
    for cls in type(module).__mro__:
        if cls in names:
            return names[cls]
    raise ValueError(f"{type(module).__name__} is no registered attention block; choose from {sorted(BLOCKS)}")


def build(variant: str, channels: int, size: tuple[int, int], **options) -> nn.Module:
    """Build attention ``variant`` for ``channels`` and feature ``size`` (H, W).

    ``options`` override the variant's entries / the block's defaults (terms,
    branches, combine, e1_scale, key_reduction, value_reduction, chunk,
    checkpoint, precision) and choose the point-wise structure (structure, psa_reduction).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown attention variant {variant!r}; choose from {sorted(VARIANTS)}")
    if variant == "none":
        return NoAttention()
    spec = {**VARIANTS[variant], **options}
    T.e1_factor(spec.get("e1_scale", "none"), 1)  # validate even where E1 is absent
    name = block_name(spec)
    if name not in BLOCKS:
        raise ValueError(f"variant {variant!r} names block {name!r}; registered blocks: {sorted(BLOCKS)}")
    spec.pop("block", None)
    return BLOCKS[name].from_options(channels, size, variant=variant, build=build, **spec)


def has_attention_map(block: nn.Module | None) -> bool:
    """Whether ``block`` (a model's ``attention``) has maps over positions to draw or measure."""
    return block is not None and not isinstance(block, NoAttention) and getattr(block, "has_attention_map", True)
