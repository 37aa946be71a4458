"""Adapter for ISIC 2017 Part 1 (and anything laid out like it).

Layout (after extracting the six official archives)::

    ISIC-2017_Training_Data/ISIC_0000000.jpg            (+ _superpixels.png, metadata CSV: ignored)
    ISIC-2017_Training_Part1_GroundTruth/ISIC_0000000_segmentation.png   (0/255)
    ISIC-2017_Validation_Data/ ...  ISIC-2017_Validation_Part1_GroundTruth/ ...
    ISIC-2017_Test_v2_Data/ ...     ISIC-2017_Test_v2_Part1_GroundTruth/ ...

Images and masks are found anywhere below the root by name; the official split
of a case comes from the name of the folder holding its image (Training /
Validation / Test), ``None`` when no such folder name is present.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..io_utils import UserError
from .cases import FormatAdapter, Layout, RawCase

IMAGE_RE = re.compile(r"^(ISIC_\d+)\.(jpe?g|png)$", re.IGNORECASE)
MASK_RE = re.compile(r"^(ISIC_\d+)_segmentation\.png$", re.IGNORECASE)
SPLIT_WORDS = (("validation", "val"), ("training", "train"), ("test", "test"))
LABEL_VALUES = {"0": 0, "255": 1}  # official masks are 0/255
DEFAULT_LABELS = {"0": "background", "1": "lesion"}


def _split_of(path: Path, root: Path) -> str | None:
    for part in reversed(path.relative_to(root).parts[:-1]):
        low = part.lower()
        for word, split in SPLIT_WORDS:
            if word in low:
                return split
    return None


def find_cases(root: str | Path) -> list[RawCase]:
    """Pair every ``ISIC_<id>.jpg`` under ``root`` with its ``ISIC_<id>_segmentation.png``."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: folder not found; run `jointseg download` first or give --source")
    images: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        for pattern, table in ((IMAGE_RE, images), (MASK_RE, masks)):
            m = pattern.match(path.name)
            if m:
                cid = m.group(1)
                if cid in table:
                    raise UserError(f"{path}: duplicate case {cid} (also {table[cid]}); remove one")
                table[cid] = path
    if not images:
        raise UserError(
            f"{root}: no ISIC_<id>.jpg images found (empty or not extracted?); "
            "run `jointseg download` or point --source at the extracted archives"
        )
    for cid, path in sorted(images.items()):
        if cid not in masks:
            raise UserError(
                f"{path}: image has no mask {cid}_segmentation.png; add the ground-truth archive or remove the image"
            )
    for cid, path in sorted(masks.items()):
        if cid not in images:
            raise UserError(f"{path}: mask has no image {cid}.jpg; add the image archive or remove the mask")
    return [RawCase(cid, images[cid], masks[cid], _split_of(images[cid], root)) for cid in sorted(images)]


class IsicFormat(FormatAdapter):
    """ISIC 2017 Part 1: RGB images, 0/255 masks, the official split from the folder names."""

    summary = "ISIC 2017 Part 1 layout (RGB images, 0/255 masks, official split by folder)"

    def find_layout(self, root: Path, labels: dict[str, str] | None) -> Layout:
        return Layout(
            cases=find_cases(root),
            labels=labels or dict(DEFAULT_LABELS),
            channels=["R", "G", "B"],
            ndim=2,
            label_values=dict(LABEL_VALUES),
        )
