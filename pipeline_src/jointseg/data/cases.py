"""Format adapters: the base class, and what an adapter finds (raw cases and the layout facts
``prepare`` needs). The adapters by name: :data:`jointseg.data.formats.FORMATS`.

Also the pieces that 2-D and 3-D ``prepare`` and ``predict`` share about cases:
the manifest record of a case, its test-image copy, and the grouping of
nnU-Net channel files ``<case>_<XXXX><ending>`` into cases.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..io_utils import UserError


@dataclass(frozen=True)
class RawCase:
    """One raw case: id, image file, label file, split from the layout (or None).

    ``channels`` lists one file per input channel when the layout stores them
    separately (nnU-Net: ``<case>_0000<ending>``, ``<case>_0001<ending>`` ...);
    then ``image`` is the first of them.
    """

    id: str
    image: Path
    label: Path
    split: str | None = None
    channels: tuple[Path, ...] = ()

    @property
    def images(self) -> tuple[Path, ...]:
        """Every image file of the case (one unless channels are separate files)."""
        return self.channels or (self.image,)


@dataclass
class Layout:
    """An adapter's answer: the labelled cases and how their files are organised."""

    cases: list[RawCase]
    labels: dict[str, str]  # class index (as a string) -> name
    channels: list[str]  # channel names; len = the model's in_channels
    ndim: int  # 2: images (prepare_2d), 3: volumes sliced for training (prepare_3d)
    label_values: dict[str, int] | None = None  # 2-D: raw mask value -> class; None: masks hold class indices
    channel_files: bool = False  # one file per channel, named <case>_XXXX<ending>
    file_ending: str | None = None
    fixed_splits: dict[str, str] = field(default_factory=dict)  # id -> split the layout decides
    notes: list[str] = field(default_factory=list)  # printed by prepare


class FormatAdapter:
    """A raw data set layout, as nnU-Net's reader/writers: where the labelled cases are and how
    their files are stored.

    A subclass sets :attr:`summary` and implements :meth:`find_layout`; one line in
    :data:`jointseg.data.formats.FORMATS` gives it its name, which the config's ``format``
    enum, ``jointseg prepare --format``, config/README.md and the docs then list.
    """

    summary: ClassVar[str] = ""  # one line: what the layout is (schema, config/README.md)

    def find_layout(self, root: Path, labels: dict[str, str] | None) -> Layout:
        """The cases under ``root``; ``labels``: the config's class names (None: the data set's own)."""
        raise NotImplementedError


def channel_file_parts(name: str, ending: str) -> tuple[str, int] | None:
    """``("<case>", channel)`` of an nnU-Net image file name ``<case>_<XXXX><ending>``, else ``None``."""
    if not name.endswith(ending):
        return None
    stem = name[: -len(ending)]
    case, _, index = stem.rpartition("_")
    if not case or len(index) != 4 or not index.isdigit():
        return None
    return case, int(index)


def case_record(case: RawCase, split: str, root: Path, layout: Layout, **fields) -> dict:
    """A case's manifest record: id, split, array and source paths (relative to ``root``), then ``fields``."""
    rec = {
        "id": case.id,
        "split": split,
        "image": f"arrays/{case.id}_image.npy",
        "label": f"arrays/{case.id}_label.npy",
        "source_image": case.image.relative_to(root).as_posix(),
        "source_label": case.label.relative_to(root).as_posix(),
        **fields,
    }
    if layout.channel_files:
        rec["source_images"] = [p.relative_to(root).as_posix() for p in case.images]
    return rec


def copy_test_images(case: RawCase, folder: Path, layout: Layout, suffix: str) -> None:
    """Copy the case's original image file(s) into ``folder``: ``<id><suffix>``, or every channel file."""
    if layout.channel_files:  # keep nnU-Net names so predict finds every channel of a case
        for path in case.images:
            shutil.copyfile(path, folder / path.name)
    else:
        shutil.copyfile(case.image, folder / f"{case.id}{suffix}")


def channel_files_needed(ending: str, channels: int, indices: Iterable[int]) -> int:
    """How many channel files a case needs (one RGB(A) PNG may carry 3 or 4 channels)."""
    if ending == ".png" and channels in (3, 4) and sorted(indices) == [0]:
        return 1
    return channels


def group_channel_files(paths: Iterable[Path], ending: str, fix: str) -> dict[str, dict[int, Path]]:
    """``{case: {channel index: file}}`` sorted by case; a file named otherwise is an error ending in ``fix``."""
    found: dict[str, dict[int, Path]] = {}
    for path in map(Path, paths):
        parts = channel_file_parts(path.name, ending)
        if parts is None:
            raise UserError(f"{path}: not named <case>_<XXXX>{ending} (4-digit channel index); {fix}")
        found.setdefault(parts[0], {})[parts[1]] = path
    return dict(sorted(found.items()))


def ordered_channels(
    folder: Path, case: str, files: dict[int, Path], need: int, ending: str, declared: str
) -> tuple[Path, ...]:
    """The ``need`` channel files of ``case`` in channel order; a missing or extra channel names its file.

    ``declared`` says where the channel count comes from (dataset.json, a checkpoint).
    """
    missing = [i for i in range(need) if i not in files]
    if missing:
        raise UserError(
            f"{folder / f'{case}_{missing[0]:04d}{ending}'}: channel file missing for case '{case}' "
            f"({declared}); add it or remove the case"
        )
    extra = sorted(i for i in files if i >= need)
    if extra:
        raise UserError(
            f"{files[extra[0]]}: channel {extra[0]} of case '{case}' is not declared ({declared}); remove the file"
        )
    return tuple(files[i] for i in range(need))
