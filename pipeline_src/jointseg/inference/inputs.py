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
from ..data.cases import channel_files_needed, group_channel_files, ordered_channels
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


def group_cases(files: list[Path], spec: dict) -> list[tuple[str, list[Path]]]:
    """``[(case id, [file per channel])]`` in case order, following the checkpoint's ``spec``."""
    if not spec.get("channel_files"):
        return [(case_id(p), [Path(p)]) for p in files]
    ending, n_channels = spec["file_ending"], int(spec["in_channels"])
    fix = "this checkpoint reads nnU-Net channel files - rename the file or give the matching data"
    declared = f"the checkpoint expects {n_channels} channel(s): {', '.join(spec.get('channels') or [])}"
    cases = []
    for cid, channels in group_channel_files(files, ending, fix).items():
        folder = next(iter(channels.values())).parent
        need = channel_files_needed(ending, n_channels, channels)
        for index in range(need):
            beside = folder / f"{cid}_{index:04d}{ending}"
            if index not in channels and beside.is_file():
                channels[index] = beside
        cases.append((cid, list(ordered_channels(folder, cid, channels, need, ending, declared))))
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
