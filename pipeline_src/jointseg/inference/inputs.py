"""Which files ``predict`` reads, and how they group into cases.

Without channel files every supported file is one case. With a checkpoint
trained on nnU-Net channel files (``spec["channel_files"]``) the files
``<case>_0000<ending>``, ``<case>_0001<ending>`` ... form one case; channel
files missing from the list given are looked up beside the given ones, so
pointing ``--input`` at one channel file of a case is enough.
"""

from __future__ import annotations

from pathlib import Path

from .. import paths
from ..data.cases import channel_file_parts
from ..io_utils import UserError

SUFFIXES = paths.IMAGE_SUFFIXES


def case_id(path: str | Path) -> str:
    """File name without its (possibly double, ``.nii.gz``) extension (:func:`jointseg.paths.case_id`)."""
    return paths.case_id(path, SUFFIXES) or Path(path).stem


def list_inputs(path: str | Path) -> list[Path]:
    """One file, or the supported files of a folder (sorted); clear errors otherwise."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path}: input not found; give an image/NIfTI file or a folder of them")
    files = sorted(
        p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(SUFFIXES) and not p.name.startswith(".")
    )
    if not files:
        raise UserError(f"{path}: no PNG/JPEG/NIfTI files in this folder (looked for {', '.join(SUFFIXES)})")
    return files


def _files_needed(spec: dict, found: dict[int, Path]) -> int:
    channels, ending = int(spec["in_channels"]), spec["file_ending"]
    if ending == ".png" and channels in (3, 4) and sorted(found) == [0]:
        return 1  # one RGB(A) PNG carries the channels
    return channels


def group_cases(files: list[Path], spec: dict) -> list[tuple[str, list[Path]]]:
    """``[(case id, [file per channel])]`` in case order, following the checkpoint's ``spec``."""
    if not spec.get("channel_files"):
        return [(case_id(p), [Path(p)]) for p in files]
    ending = spec["file_ending"]
    found: dict[str, dict[int, Path]] = {}
    for path in map(Path, files):
        parts = channel_file_parts(path.name, ending)
        if parts is None:
            raise UserError(
                f"{path}: this checkpoint reads nnU-Net channel files named <case>_<XXXX>{ending}; "
                "rename the file or give the matching data"
            )
        found.setdefault(parts[0], {})[parts[1]] = path
    cases = []
    for cid, channels in sorted(found.items()):
        folder = next(iter(channels.values())).parent
        need = _files_needed(spec, channels)
        for index in range(need):
            beside = folder / f"{cid}_{index:04d}{ending}"
            if index not in channels and beside.is_file():
                channels[index] = beside
        missing = [i for i in range(need) if i not in channels]
        if missing:
            raise UserError(
                f"{folder / f'{cid}_{missing[0]:04d}{ending}'}: channel file missing for case '{cid}' "
                f"(the checkpoint expects {spec['in_channels']} channel(s): "
                f"{', '.join(spec.get('channels') or [])})"
            )
        extra = sorted(i for i in channels if i >= need)
        if extra:
            raise UserError(
                f"{channels[extra[0]]}: case '{cid}' has channel {extra[0]}, but the checkpoint "
                f"expects {spec['in_channels']} channel(s)"
            )
        cases.append((cid, [channels[i] for i in range(need)]))
    return cases


def case_files(folder: str | Path, case: str, spec: dict) -> list[Path] | None:
    """The file(s) of ``case`` in ``folder`` (e.g. ``test/images``), or ``None`` when there are none."""
    folder = Path(folder)
    if spec.get("channel_files"):
        first = folder / f"{case}_0000{spec['file_ending']}"
        return group_cases([first], spec)[0][1] if first.is_file() else None
    for suffix in SUFFIXES:
        if (folder / f"{case}{suffix}").is_file():
            return [folder / f"{case}{suffix}"]
    return None
