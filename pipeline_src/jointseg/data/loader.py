"""Training batches and validation cases over a prepared data set.

``TrainBatches(prepared_dir, split, batch_size, crop, augment, seed)[t]`` is a
pure function of ``(seed, t)``: resuming training needs only ``t``, and the
same batches come out with or without DataLoader workers. Sampling walks
through the cases epoch by epoch (a fresh seeded permutation per epoch), so
every case is seen once per epoch. Images have any number of channels ``C``
(3 for RGB, one per modality for MRI). For 3-D data each drawn case contributes
one slice, with probability ``foreground_fraction`` (default 2/3) one that
contains foreground. Each sample gets one affine warp (random crop of the
training size, flips, rotation, scaling; bilinear for images, nearest for
labels, zero outside) and intensity / colour jitter, all drawn from
``numpy.random.default_rng([seed, 1, t, b])``.

Arrays are memory-mapped (``np.load(mmap_mode="r")``) and opened lazily per
process, so the object pickles cheaply into DataLoader workers; a
``DataLoader(batches, batch_size=None, sampler=range(t0, t1), num_workers=k)``
yields the same batches as indexing directly (numpy arrays become tensors).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import paths
from ..io_utils import UserError

# The transform settings of plain random crops; also the keys TrainBatches reads
# from ``train.augment`` (whose defaults live in the config schema only).
NO_AUGMENT = {"flip": False, "rotate": 0.0, "scale": [1.0, 1.0], "intensity": 0.0, "color": 0.0}


def warp(
    image: np.ndarray, label: np.ndarray, matrix: np.ndarray, offset: np.ndarray, out_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Affine warp: output pixel ``o`` samples the input at ``matrix @ o + offset``.

    Image ``(C, H, W)``: bilinear, zero outside. Label ``(H, W)``: nearest,
    0 outside. Vectorised over channels in numpy (several times faster than
    ``scipy.ndimage.affine_transform`` per channel for small crops).
    """
    h, w = out_shape
    C, H, W = image.shape
    grid = np.indices((h, w), dtype=np.float64).reshape(2, -1)
    ys, xs = matrix @ grid + offset[:, None]
    y0, x0 = np.floor(ys), np.floor(xs)
    wy, wx = (ys - y0).astype(np.float32), (xs - x0).astype(np.float32)
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1))).reshape(C, -1)  # zero border: clipped indices read 0
    yi0 = np.clip(y0.astype(np.int64) + 1, 0, H + 1) * (W + 2)
    yi1 = np.clip(y0.astype(np.int64) + 2, 0, H + 1) * (W + 2)
    xi0 = np.clip(x0.astype(np.int64) + 1, 0, W + 1)
    xi1 = np.clip(x0.astype(np.int64) + 2, 0, W + 1)
    img = (padded.take(yi0 + xi0, axis=1) * (1 - wx) + padded.take(yi0 + xi1, axis=1) * wx) * (1 - wy) + (
        padded.take(yi1 + xi0, axis=1) * (1 - wx) + padded.take(yi1 + xi1, axis=1) * wx
    ) * wy
    yr, xr = np.floor(ys + 0.5).astype(np.int64), np.floor(xs + 0.5).astype(np.int64)
    inside = (yr >= 0) & (yr < H) & (xr >= 0) & (xr < W)
    lab = np.where(inside, label.reshape(-1).take(np.clip(yr, 0, H - 1) * W + np.clip(xr, 0, W - 1)), 0)
    lab = lab.astype(np.int64)
    return img.reshape(C, h, w), lab.reshape(h, w)


def read_manifest(prepared_dir: str | Path) -> dict:
    """The prepared folder's ``manifest.json`` (a :class:`UserError` if it is missing)."""
    path = Path(prepared_dir) / paths.MANIFEST
    if not path.is_file():
        raise UserError(
            f"{path}: prepared data not found; run `jointseg prepare` for this data set (or `snakemake prepare`) first"
        )
    return json.loads(path.read_text())


def _cases(prepared_dir: str | Path, split: str) -> tuple[dict, list[dict]]:
    manifest = read_manifest(prepared_dir)
    cases = [c for c in manifest["cases"] if c["split"] == split]
    if not cases:
        raise UserError(f"{Path(prepared_dir) / paths.MANIFEST}: no cases in split '{split}'")
    return manifest, cases


def augment_settings(augment: dict | None) -> dict:
    """The transforms of a schema-filled ``train.augment`` dict: :data:`NO_AUGMENT` when it is
    ``None`` or ``enabled`` is false, else its flip, rotate, scale, intensity and colour."""
    if augment is None or not augment["enabled"]:
        return dict(NO_AUGMENT)
    missing = sorted(set(NO_AUGMENT) - set(augment))
    if missing:
        raise ValueError(f"augment lacks {missing}: pass the schema-filled train.augment (jointseg.config)")
    return {key: augment[key] for key in NO_AUGMENT}


class TrainBatches:
    """Seeded, augmented training batches; ``batches[t] -> (image (B,C,h,w) float32, label (B,h,w) int64)``.

    ``crop`` is the training size ``(h, w)`` (prepared images / padded slices
    are at least that big). ``augment`` is the config's complete (schema-filled)
    ``train.augment`` dict, or ``None`` for none (:func:`augment_settings`).
    ``length`` only answers ``len()`` (for samplers that ask).
    """

    def __init__(
        self,
        prepared_dir: str | Path,
        split: str,
        batch_size: int,
        crop,
        augment: dict | None,
        seed: int,
        foreground_fraction: float = 2 / 3,
        length: int = 10**9,
    ):
        self.root = Path(prepared_dir)
        self.manifest, self.cases = _cases(prepared_dir, split)
        self.ndim = int(self.manifest["ndim"])
        self.batch_size = int(batch_size)
        self.crop = (int(crop[0]), int(crop[1]))
        self.augment = augment_settings(augment)
        self.seed = int(seed)
        self.foreground_fraction = float(foreground_fraction)
        self.length = int(length)
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for case in self.cases:
            shape = case.get("padded_shape") or self.manifest["size"]
            if shape[0] < self.crop[0] or shape[1] < self.crop[1]:
                raise UserError(
                    f"{self.root}: case {case['id']} is {shape}, smaller than the crop {self.crop}; "
                    "prepare with --size at least the crop"
                )

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"] = {}  # memory maps are reopened in each worker
        return state

    def __len__(self) -> int:
        return self.length

    def _open(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._arrays:
            case = self.cases[i]
            self._arrays[i] = (
                np.load(self.root / case["image"], mmap_mode="r"),
                np.load(self.root / case["label"], mmap_mode="r"),
            )
        return self._arrays[i]

    def _case_index(self, k: int) -> int:
        """Case of the ``k``-th sample overall: epoch-wise seeded permutations."""
        epoch, r = divmod(k, len(self.cases))
        return int(np.random.default_rng([self.seed, 0, epoch]).permutation(len(self.cases))[r])

    def sample(self, t: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``b`` of batch ``t``: image ``(C, h, w)`` float32, label ``(h, w)`` int64."""
        rng = np.random.default_rng([self.seed, 1, t, b])
        ci = self._case_index(t * self.batch_size + b)
        image, label = self._open(ci)
        if self.ndim == 3:
            fg = self.cases[ci].get("foreground_slices") or []
            if fg and rng.random() < self.foreground_fraction:
                s = int(fg[rng.integers(len(fg))])
            else:
                s = int(rng.integers(image.shape[0]))
            image, label = image[s], label[s]  # (C, H', W'), (H', W')
        return self._augment(np.asarray(image, np.float32), np.asarray(label), rng)

    def _augment(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        aug, (h, w) = self.augment, self.crop
        H, W = label.shape
        oy, ox = int(rng.integers(H - h + 1)), int(rng.integers(W - w + 1))
        flips = np.where(rng.random(2) < 0.5, -1.0, 1.0) if aug["flip"] else np.ones(2)
        angle = math.radians(rng.uniform(-aug["rotate"], aug["rotate"])) if aug["rotate"] else 0.0
        scale = rng.uniform(*aug["scale"]) if aug["scale"][0] != aug["scale"][1] else float(aug["scale"][0])
        c, s = math.cos(angle), math.sin(angle)
        matrix = np.array([[c, -s], [s, c]]) @ np.diag(flips / scale)
        if np.allclose(matrix, np.eye(2)):  # plain crop: no interpolation
            img = image[:, oy : oy + h, ox : ox + w].copy()
            lab = label[oy : oy + h, ox : ox + w].astype(np.int64)
        else:  # input = matrix @ (out - out_centre) + in_centre, in pixel coordinates
            out_c = np.array([(h - 1) / 2, (w - 1) / 2])
            in_c = np.array([oy + out_c[0], ox + out_c[1]])
            img, lab = warp(image, label, matrix, in_c - matrix @ out_c, (h, w))
        if aug["intensity"]:
            i = aug["intensity"]
            img = img * (1 + rng.uniform(-i, i)) + rng.uniform(-i, i)
        if aug["color"] and img.shape[0] > 1:
            col = aug["color"]
            img = img * (1 + rng.uniform(-col, col, (img.shape[0], 1, 1))) + rng.uniform(
                -col, col, (img.shape[0], 1, 1)
            )
        return img.astype(np.float32), lab

    def __getitem__(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        t = int(t)
        if t < 0:
            raise IndexError(f"batch index {t} < 0")
        pairs = [self.sample(t, b) for b in range(self.batch_size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def eval_cases(prepared_dir: str | Path, split: str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(case_id, image, label)`` of every case in ``split``, in id order.

    2-D: image ``(1, C, H, W)`` float32, label ``(1, H, W)`` uint8; 3-D: all
    padded slices, image ``(S, C, H', W')``, label ``(S, H', W')``.
    """
    root = Path(prepared_dir)
    manifest, cases = _cases(prepared_dir, split)
    for case in cases:
        image, label = np.load(root / case["image"]), np.load(root / case["label"])
        if manifest["ndim"] == 2:
            image, label = image[None], label[None]
        yield case["id"], image, label
