"""The one owner of the on-disk layout: folder builders, case ids and file suffixes.

Layout (``results`` is the study's results root, ``data_dir`` the data root)::

    <data_dir>/raw/<dataset>/               fetched archives, extracted files
    <data_dir>/prepared/<dataset>/<key>/    manifest.json, arrays, splits, test/{images,labels}
    <results_dir>/<study>/ = <results>      one study
    <results>/<dataset>/<variant>/seed<k>/  one training run
    <results>/summary/                      tables, statistics, figures, report

``<key>`` is :func:`jointseg.config.preparation_key` of the data set's entry
(size, split, labels, sources, ...): studies that prepare the same data set
differently keep separate prepared folders.

Functions here only build paths; they never look at the disk, so code that
reads inputs gets them as explicit arguments and the layout stays in one place.
"""

from __future__ import annotations

from pathlib import Path

# Suffixes are matched case-insensitively, longest first so that ``.nii.gz`` wins over ``.gz``.
LABEL_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".png", ".npy")
"""Files holding class-index labels (references and predictions)."""

IMAGE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""Files holding input images (2-D photographs, NIfTI volumes)."""

NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
KNOWN_SUFFIXES: tuple[str, ...] = tuple(dict.fromkeys(LABEL_SUFFIXES + IMAGE_SUFFIXES))

# File and folder names inside one run folder.
RUN_CONFIG = "run_config.json"
HISTORY = "history.csv"
METRICS = "metrics.csv"
PREDICTIONS = "predictions"
CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"


def case_id(path: str | Path, suffixes: tuple[str, ...] = KNOWN_SUFFIXES) -> str | None:
    """The case id of a file: its name without a known suffix; ``None`` if no suffix matches.

    ``case_id("a/ISIC_0001.jpg") == "ISIC_0001"``, ``case_id("hip_001.nii.gz") == "hip_001"``.
    """
    name = Path(path).name
    lower = name.lower()
    for suffix in sorted(suffixes, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def find_case_file(folder: str | Path, case: str, suffixes: tuple[str, ...] = KNOWN_SUFFIXES) -> Path | None:
    """``folder/<case><suffix>`` for the first suffix that exists, or ``None``."""
    for suffix in suffixes:
        candidate = Path(folder) / f"{case}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def study_dir(results_dir: str | Path, study: str) -> Path:
    """``<results_dir>/<study>``: everything one study writes (runs, summary, bookkeeping)."""
    return Path(results_dir) / study


def run_dir(results: str | Path, dataset: str, variant: str, seed: int | str) -> Path:
    """``<results>/<dataset>/<variant>/seed<k>``: the folder of one training run.

    ``seed`` may be the Snakemake wildcard ``"{seed}"``: the rules build their patterns here too.
    """
    return Path(results) / dataset / variant / f"seed{seed}"


def summary_dir(results: str | Path) -> Path:
    """``<results>/summary``: tables, statistics, figures and the report of the study."""
    return Path(results) / "summary"


def pipeline_dir(results: str | Path) -> Path:
    """``<results>/.pipeline``: the workflow's effective config and bookkeeping markers."""
    return Path(results) / ".pipeline"


def prepared_dir(data_dir: str | Path, dataset: str, key: str) -> Path:
    """``<data_dir>/prepared/<dataset>/<key>``: arrays, ``manifest.json``, splits and test folders.

    ``key`` is the data set's preparation key (or the wildcard ``"{prep}"``).
    """
    return Path(data_dir) / "prepared" / dataset / key


def raw_dir(data_dir: str | Path, dataset: str) -> Path:
    """``<data_dir>/raw/<dataset>``: the fetched archives and their extracted contents."""
    return Path(data_dir) / "raw" / dataset


def test_images_dir(prepared: str | Path) -> Path:
    """Test images on their original grid (what ``predict`` reads)."""
    return Path(prepared) / "test" / "images"


def test_labels_dir(prepared: str | Path) -> Path:
    """Test references on their original grid (what ``evaluate`` compares against)."""
    return Path(prepared) / "test" / "labels"
