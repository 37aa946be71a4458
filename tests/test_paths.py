"""The layout owner: case ids, suffixes, folder builders."""

from __future__ import annotations

from pathlib import Path

from jointseg import paths


def test_case_id_strips_known_suffixes():
    assert paths.case_id(Path("x/ISIC_001.nii.gz")) == "ISIC_001"
    assert paths.case_id("case.nii") == "case"
    assert paths.case_id("007.png") == "007"
    assert paths.case_id("a.npy") == "a"
    assert paths.case_id("ISIC_0001.JPG") == "ISIC_0001"  # case-insensitive suffix, name kept
    assert paths.case_id("notes.txt") is None
    assert paths.case_id("a.jpg", paths.LABEL_SUFFIXES) is None  # a photograph is no label file


def test_find_case_file(tmp_path):
    (tmp_path / "c1.nii.gz").write_bytes(b"")
    (tmp_path / "c2.png").write_bytes(b"")
    assert paths.find_case_file(tmp_path, "c1") == tmp_path / "c1.nii.gz"
    assert paths.find_case_file(tmp_path, "c2", paths.LABEL_SUFFIXES) == tmp_path / "c2.png"
    assert paths.find_case_file(tmp_path, "c3") is None


def test_folder_builders():
    assert paths.run_dir("results/paper", "isic", "joint", 2) == Path("results/paper/isic/joint/seed2")
    assert paths.summary_dir("results/paper") == Path("results/paper/summary")
    assert paths.prepared_dir("data", "isic", "0a1b2c3d4e") == Path("data/prepared/isic/0a1b2c3d4e")
    assert paths.raw_dir("data", "isic") == Path("data/raw/isic")
    assert paths.test_images_dir(Path("data/prepared/isic")) == Path("data/prepared/isic/test/images")
    assert paths.test_labels_dir(Path("data/prepared/isic")) == Path("data/prepared/isic/test/labels")
