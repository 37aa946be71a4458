"""The embedded demo data: byte-identical regeneration, layout like the real archives, end to end."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from jointseg.data.demo import ISIC_SPLITS, MSD_TASK, make_demo
from jointseg.data.download import download_dataset
from jointseg.data.prepare import Settings, prepare
from jointseg.data.sources import DEMO_DIR, Source
from jointseg.io_utils import sha256_file

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted(p for p in DEMO_DIR.rglob("*") if p.is_file() and p.suffix in (".zip", ".tar"))


def test_committed_demo_is_small_and_locked():
    assert len(COMMITTED) == 7
    assert sum(p.stat().st_size for p in COMMITTED) < 2 * 1024 * 1024
    lock = json.loads((ROOT / "config" / "checksums.demo.lock.json").read_text())
    for path in COMMITTED:
        key = ("demo_msd/" if path.suffix == ".tar" else "demo_isic/") + path.name
        assert lock[key]["sha256"] == sha256_file(path), f"{path}: regenerate the lock with make-demo --lock"


def test_regeneration_is_byte_identical(tmp_path):
    written = make_demo(tmp_path, seed=0)
    assert len(written) == len(COMMITTED)
    for _, path in written:
        committed = DEMO_DIR / path.relative_to(tmp_path)
        assert path.read_bytes() == committed.read_bytes(), f"{committed} differs from a fresh make-demo"


def test_isic_layout_like_the_official_archives():
    for split, (img_stem, gt_stem, count) in ISIC_SPLITS.items():
        with zipfile.ZipFile(DEMO_DIR / "isic" / f"{img_stem}.zip") as zf:
            names = [n for n in zf.namelist() if n.endswith(".jpg")]
            assert len(names) == count and all(n.startswith(f"{img_stem}/ISIC_") for n in names)
            image = Image.open(io.BytesIO(zf.read(names[0])))
            assert image.format == "JPEG" and image.mode == "RGB" and 96 <= image.size[1] <= 160
            if split == "train":
                assert f"{img_stem}/{img_stem}_metadata.csv" in zf.namelist()
        with zipfile.ZipFile(DEMO_DIR / "isic" / f"{gt_stem}.zip") as zf:
            masks = [n for n in zf.namelist() if n.endswith("_segmentation.png")]
            assert len(masks) == count
            values = np.unique(np.asarray(Image.open(io.BytesIO(zf.read(masks[0])))))
            assert set(values) == {0, 255}


def test_msd_layout_and_geometry():
    with tarfile.open(DEMO_DIR / f"{MSD_TASK}.tar") as tf:
        meta = json.loads(tf.extractfile(f"{MSD_TASK}/dataset.json").read())
        assert meta["labels"] == {"0": "background", "1": "Anterior", "2": "Posterior"}
        assert len(meta["training"]) == 20
        entry = meta["training"][0]
        img = nib.Nifti1Image.from_bytes(gzip.decompress(tf.extractfile(f"{MSD_TASK}/{entry['image'][2:]}").read()))
        lab = nib.Nifti1Image.from_bytes(gzip.decompress(tf.extractfile(f"{MSD_TASK}/{entry['label'][2:]}").read()))
    assert nib.aff2axcodes(img.affine) != ("R", "A", "S")  # flipped / permuted axes
    rot = img.affine[:3, :3] / np.array(img.header.get_zooms())
    assert np.abs(rot).max(0).min() < 0.999  # oblique
    assert np.abs(img.affine[:3, 3]).min() > 1  # non-zero origin
    zooms = img.header.get_zooms()
    assert max(zooms) / min(zooms) > 1.3  # anisotropic
    labels = np.asarray(lab.dataobj)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert (ndimage.binary_dilation(labels == 1) & (labels == 2)).any()  # the two structures touch


@pytest.mark.parametrize("name,fmt,rule", [("demo_isic", "isic", "official"), ("demo_msd", "msd", "seeded")])
def test_demo_download_prepare_reproducible(tmp_path, name, fmt, rule):
    import yaml

    entry = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["datasets"][name]
    sources = [Source(url=s["url"], name=Path(s["url"]).name, split=s.get("split", "all")) for s in entry["sources"]]
    raw = tmp_path / "raw"
    download_dataset(name, sources, raw, lock=ROOT / entry["lock_file"], search=[ROOT])
    st = Settings(dataset=name, format=fmt, size=(64, 64), labels=entry["labels"], split_rule=rule)
    a, b = prepare(raw, tmp_path / "a", st), prepare(raw, tmp_path / "b", st)
    assert a == b
    for rel in ("manifest.json", "splits.json"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    arrays = sorted((tmp_path / "a" / "arrays").iterdir())
    assert all(p.read_bytes() == (tmp_path / "b" / "arrays" / p.name).read_bytes() for p in arrays)
    counts = {s: sum(c["split"] == s for c in a["cases"]) for s in ("train", "val", "test")}
    assert counts == ({"train": 60, "val": 12, "test": 20} if fmt == "isic" else {"train": 12, "val": 4, "test": 4})
