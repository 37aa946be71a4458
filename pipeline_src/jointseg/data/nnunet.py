"""Adapter for the nnU-Net v2 raw data set format (bring your own data).

Layout (``DatasetXXX_Name/``, the root itself or one level below it)::

    dataset.json   {"channel_names": {"0": "T1", "1": "T2"}, "labels": {"background": 0, "tumor": 1},
                    "numTraining": 20, "file_ending": ".nii.gz"}
    imagesTr/<case>_0000<ending>, <case>_0001<ending>, ...   one file per channel (4-digit index)
    labelsTr/<case><ending>                                  class indices 0..K-1
    imagesTs/...  (optional)   labelsTs/<case><ending>  (optional; not part of nnU-Net's format)

``file_ending`` is ``.nii.gz`` or ``.nii`` (3-D volumes, one per channel) or
``.png`` (2-D; a grey PNG is one channel, an RGB PNG three). Region-based
labels (a ``labels`` value that is a list) are refused: the models here
predict one class per pixel. Test cases: ``imagesTs`` cases with a label in
``labelsTs`` form the test split (the ``imagesTr`` cases are split into train
and val); unlabelled ``imagesTs`` cases are not scored and only reported (run
``jointseg predict --input <root>/imagesTs`` on them).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io_utils import UserError
from .cases import FormatAdapter, Layout, RawCase, channel_files_needed, group_channel_files, ordered_channels
from .msd import find_task

ENDINGS = (".nii.gz", ".nii", ".png")


def _labels(raw, path: Path) -> dict[str, str]:
    """``labels`` (name -> class index) as ``{"index": name}``; refuses regions and gaps."""
    if not isinstance(raw, dict) or not raw:
        raise UserError(f'{path}: \'labels\' must map names to class indices, e.g. {{"background": 0, "tumor": 1}}')
    regions = [name for name, v in raw.items() if isinstance(v, (list, tuple))]
    if regions:
        raise UserError(
            f"{path}: region-based labels {regions} (a list of classes per label) are not "
            "supported; give each label one class index (convert the regions to classes)"
        )
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in raw.values()):
        raise UserError(f"{path}: 'labels' values must be integers (name -> class index), got {raw}")
    values = sorted(raw.values())
    if values != list(range(len(values))):
        raise UserError(
            f"{path}: label values {values} must be consecutive from 0 (background) as nnU-Net "
            "requires; renumber the classes"
        )
    return {str(v): str(name) for name, v in sorted(raw.items(), key=lambda kv: kv[1])}


def read_dataset_json(task: Path) -> dict:
    """``dataset.json`` checked: ``{"channels": [...], "labels": {"0": name}, "file_ending", "num_training"}``."""
    path = task / "dataset.json"
    if not path.is_file():
        raise UserError(f"{path}: not found; an nnU-Net raw data set needs dataset.json")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read dataset.json ({exc})") from None
    names = meta.get("channel_names", meta.get("modality"))
    if not isinstance(names, dict) or set(map(str, names)) != {str(i) for i in range(len(names))}:
        raise UserError(f'{path}: \'channel_names\' must map "0", "1", ... to channel names, got {names!r}')
    ending = meta.get("file_ending")
    if ending not in ENDINGS:
        raise UserError(f"{path}: file_ending {ending!r} is not supported; use one of {list(ENDINGS)}")
    return {
        "channels": [str(names[str(i)]) for i in range(len(names))],
        "labels": _labels(meta.get("labels"), path),
        "file_ending": ending,
        "num_training": meta.get("numTraining"),
    }


def _group(folder: Path, ending: str, channels: int) -> dict[str, tuple[Path, ...]]:
    """``{case: channel files}`` of an images folder; a missing or undeclared channel names the case."""
    paths = [
        p for p in sorted(folder.iterdir()) if p.is_file() and p.name.endswith(ending) and not p.name.startswith(".")
    ]
    found = group_channel_files(paths, ending, "rename it")
    declared = f"dataset.json declares {channels} channel(s)"
    return {
        cid: ordered_channels(folder, cid, files, channel_files_needed(ending, channels, files), ending, declared)
        for cid, files in found.items()
    }


def _paired(images: dict, labels_dir: Path, ending: str, split: str | None) -> list[RawCase]:
    return [RawCase(cid, files[0], labels_dir / f"{cid}{ending}", split, files) for cid, files in images.items()]


def _train_cases(task: Path, meta: dict) -> list[RawCase]:
    ending, images_dir, labels_dir = meta["file_ending"], task / "imagesTr", task / "labelsTr"
    if not labels_dir.is_dir():
        raise UserError(f"{labels_dir}: labels folder missing; an nnU-Net data set needs labelsTr/")
    images = _group(images_dir, ending, len(meta["channels"]))
    if not images:
        raise UserError(f"{images_dir}: no <case>_0000{ending} images found; the folder is empty")
    for cid, files in images.items():
        if not (labels_dir / f"{cid}{ending}").is_file():
            raise UserError(
                f"{files[0]}: image of case '{cid}' has no label ({labels_dir / (cid + ending)} "
                "missing); add the label or remove the case"
            )
    for label in sorted(labels_dir.glob(f"*{ending}")):
        cid = label.name[: -len(ending)]
        if not label.name.startswith(".") and cid not in images:
            raise UserError(
                f"{label}: label of case '{cid}' has no image {cid}_0000{ending}; add it or remove the label"
            )
    n = meta["num_training"]
    if n is not None and n != len(images):
        raise UserError(
            f"{task / 'dataset.json'}: numTraining is {n} but imagesTr holds {len(images)} cases; "
            "fix numTraining or the folders"
        )
    return _paired(images, labels_dir, ending, None)


def find_layout(root: str | Path, config_labels: dict | None = None) -> Layout:
    """The labelled cases of an nnU-Net raw data set (train from imagesTr, test from labelled imagesTs)."""
    task = find_task(root, "nnU-Net data set")
    meta = read_dataset_json(task)
    labels = meta["labels"]
    if config_labels is not None:
        config_labels = {str(k): str(v) for k, v in config_labels.items()}
        if set(config_labels) != set(labels):
            raise UserError(
                f"{task / 'dataset.json'}: labels {labels} (class -> name) disagree with the data "
                f"set's config labels {config_labels}; make the config's labels the same classes"
            )
        labels = {k: config_labels[k] for k in labels}  # the config's names, dataset.json's classes
    cases = _train_cases(task, meta)
    notes, fixed = [], {}
    ending, test_dir = meta["file_ending"], task / "imagesTs"
    if test_dir.is_dir():
        test = _group(test_dir, ending, len(meta["channels"]))
        labelled = {c: f for c, f in test.items() if (task / "labelsTs" / f"{c}{ending}").is_file()}
        clash = sorted(set(labelled) & {c.id for c in cases})
        if clash:
            raise UserError(f"{test_dir}: case '{clash[0]}' is in both imagesTr and imagesTs; rename one")
        cases += _paired(labelled, task / "labelsTs", ending, "test")
        fixed = {cid: "test" for cid in labelled}
        if len(test) > len(labelled):
            notes.append(
                f"{len(test) - len(labelled)} unlabelled imagesTs case(s) not scored; segment them "
                f"with `jointseg predict --input {test_dir}`"
            )
    return Layout(
        cases=sorted(cases, key=lambda c: c.id),
        labels=labels,
        channels=meta["channels"],
        ndim=2 if ending == ".png" else 3,
        channel_files=True,
        file_ending=ending,
        fixed_splits=fixed,
        notes=notes,
    )


class NnunetFormat(FormatAdapter):
    """An nnU-Net v2 raw data set (bring your own data): one file per channel, dataset.json."""

    summary = "nnU-Net v2 raw format (dataset.json, one file per channel; NIfTI volumes or PNG images)"

    def find_layout(self, root: Path, labels: dict[str, str] | None) -> Layout:
        return find_layout(root, labels)
