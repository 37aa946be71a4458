"""Adapter for Medical Segmentation Decathlon tasks (e.g. Task04_Hippocampus).

Layout::

    Task04_Hippocampus/dataset.json     ("training": [{"image": "./imagesTr/x.nii.gz", "label": ...}])
    Task04_Hippocampus/imagesTr/*.nii.gz
    Task04_Hippocampus/labelsTr/*.nii.gz
    Task04_Hippocampus/imagesTs/...     (unlabelled: ignored)

The task folder may be the root itself or one level below it. macOS resource
fork files (``._name``) shipped in the official tars are ignored. Multi-modal
tasks (e.g. Task01 BrainTumour: FLAIR, T1w, T1gd, T2w) store each image as one
4-D ``(X, Y, Z, C)`` NIfTI; ``modality`` in dataset.json names the channels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import paths
from ..io_utils import UserError
from .cases import FormatAdapter, Layout, RawCase

NII = paths.NIFTI_SUFFIXES
__all__ = ["NII", "MsdFormat", "RawCase", "case_id", "channel_names", "find_cases", "find_task", "read_meta"]


def case_id(path: Path) -> str:
    """A volume's case id (:func:`jointseg.paths.case_id` over the NIfTI suffixes)."""
    return paths.case_id(path, NII) or path.stem


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.endswith(NII))


def find_task(root: str | Path, what: str = "MSD task") -> Path:
    """The task folder (holding ``imagesTr``) at or one level below ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: folder not found; run `jointseg download` first or give --source")
    if (root / "imagesTr").is_dir():
        return root
    found = sorted(p.parent for p in root.glob("*/imagesTr") if p.is_dir())
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(
            f"{root}: no {what} folder (with imagesTr/ and labelsTr/) found; "
            "run `jointseg download` or point --source at the extracted task"
        )
    raise UserError(f"{root}: several {what} folders {[p.name for p in found]}; point --source at one")


def read_meta(task: Path) -> dict:
    """``dataset.json`` (empty dict when absent)."""
    path = task / "dataset.json"
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read dataset.json ({exc}); re-download the task") from None
    channel_names(meta, path)
    return meta


def channel_names(meta: dict, path: str | Path = "dataset.json") -> list[str]:
    """The channel names of ``modality`` (``{"0": "FLAIR", "1": "T1w", ...}``); one unnamed if absent."""
    modality = meta.get("modality", {"0": "image"})
    if not isinstance(modality, dict) or set(map(str, modality)) != {str(i) for i in range(len(modality))}:
        raise UserError(f'{path}: \'modality\' must map "0", "1", ... to channel names, got {modality!r}')
    return [str(modality[str(i)]) for i in range(len(modality))]


def find_cases(root: str | Path) -> tuple[list[RawCase], dict]:
    """Labelled training cases of an MSD task and its ``dataset.json``."""
    task = find_task(root)
    meta = read_meta(task)
    images_dir, labels_dir = task / "imagesTr", task / "labelsTr"
    if not labels_dir.is_dir():
        raise UserError(f"{labels_dir}: labels folder missing; the task is incomplete - re-download it")
    images = _nifti_files(images_dir)
    if not images:
        raise UserError(f"{images_dir}: no NIfTI images (.nii.gz) found; the folder is empty")
    labels = {p.name: p for p in _nifti_files(labels_dir)}
    listed = {}
    for entry in meta.get("training", []):
        img = Path(os.path.normpath(task / entry["image"]))
        listed[img.name] = Path(os.path.normpath(task / entry["label"]))
    cases = []
    for img in images:
        lab = listed.get(img.name, labels_dir / img.name)
        if img.name not in listed and meta.get("training"):
            raise UserError(f"{img}: image not listed in {task / 'dataset.json'}; add it or remove the file")
        if not lab.exists() or lab.name not in labels:
            raise UserError(f"{img}: image has no label ({lab} missing); add the label or remove the image")
        cases.append(RawCase(case_id(img), img, lab))
    missing = sorted(set(n for n in listed) - {p.name for p in images})
    if missing:
        raise UserError(f"{images_dir / missing[0]}: listed in dataset.json but missing; re-download the task")
    return cases, meta


class MsdFormat(FormatAdapter):
    """A Medical Segmentation Decathlon task: one 3-D (or 4-D multi-modal) NIfTI per case."""

    summary = "Medical Segmentation Decathlon task (NIfTI volumes; 4-D multi-modal images too)"

    def find_layout(self, root: Path, labels: dict[str, str] | None) -> Layout:
        cases, meta = find_cases(root)
        own = {str(k): str(v) for k, v in meta.get("labels", {"0": "background", "1": "foreground"}).items()}
        return Layout(cases=cases, labels=labels or own, channels=channel_names(meta), ndim=3)
