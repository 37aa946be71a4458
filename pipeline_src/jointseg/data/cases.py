"""What a format adapter finds: raw cases and the layout facts ``prepare`` needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
    channel_files: bool = False  # one file per channel, named <case>_XXXX<ending>
    file_ending: str | None = None
    fixed_splits: dict[str, str] = field(default_factory=dict)  # id -> split the layout decides
    notes: list[str] = field(default_factory=list)  # printed by prepare


def channel_file_parts(name: str, ending: str) -> tuple[str, int] | None:
    """``("<case>", channel)`` of an nnU-Net image file name ``<case>_<XXXX><ending>``, else ``None``."""
    if not name.endswith(ending):
        return None
    stem = name[: -len(ending)]
    case, _, index = stem.rpartition("_")
    if not case or len(index) != 4 or not index.isdigit():
        return None
    return case, int(index)
