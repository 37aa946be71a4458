"""Deterministic phantoms of the embedded demo data (drawn from a numpy Generator).

* :func:`isic_phantom`: a dermoscopy-like RGB image - skin-tone background with
  low-frequency texture, an irregular lesion of varied size, colour, contrast
  and internal texture, hair-like curves and a dermoscope vignette - and its
  0/255 lesion mask.
* :func:`msd_phantom` / :func:`msd_affine`: a head-like MRI volume with two
  adjacent curved structures (1 anterior, 2 posterior), Gaussian noise and a
  smooth bias field, and an oblique, flipped and permuted voxel-to-world
  affine with a non-zero origin.

Same generator state in, same arrays out: ``jointseg make-demo`` relies on it
for byte-identical archives.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import line_aa

# --------------------------------------------------------------------------- 2-D phantoms


def _smooth_noise(rng: np.random.Generator, shape: tuple, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / (field.std() + 1e-8)


def _lesion_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An irregular star-shaped blob: radius r(theta) with random low harmonics."""
    r0 = rng.uniform(0.14, 0.34) * min(h, w)
    cy = h / 2 + rng.uniform(-0.15, 0.15) * h
    cx = w / 2 + rng.uniform(-0.15, 0.15) * w
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    theta = np.arctan2(yy - cy, xx - cx)
    radius = np.ones_like(theta)
    for k in range(2, 8):
        radius += rng.uniform(0, 0.28 / k**0.8) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    ratio = rng.uniform(0.65, 1.0)  # elongation along a random direction
    ang = rng.uniform(0, np.pi)
    du = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)
    dv = -(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)
    dist = np.hypot(du, dv / ratio)
    return dist < r0 * radius


def _hair(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Opacity map of a few thin dark curves (quadratic Bezier), anti-aliased."""
    alpha = np.zeros((h, w))
    for _ in range(rng.integers(0, 7)):
        p0, p2 = rng.uniform([0, 0], [h, w]), rng.uniform([0, 0], [h, w])
        p1 = (p0 + p2) / 2 + rng.normal(0, 0.3 * min(h, w), 2)
        t = np.linspace(0, 1, 120)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        pts = np.clip(np.round(pts).astype(int), 0, [h - 1, w - 1])
        for a, b in zip(pts[:-1], pts[1:]):
            rr, cc, val = line_aa(a[0], a[1], b[0], b[1])
            np.maximum.at(alpha, (rr, cc), val)
        if rng.random() < 0.5:  # thicker hair
            alpha = np.maximum(alpha, ndimage.grey_dilation(alpha, size=2) * 0.8)
    return np.clip(alpha, 0, 1) * rng.uniform(0.6, 0.95)


def isic_phantom(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One dermoscopy-like RGB image (uint8, HxWx3) and its 0/255 lesion mask."""
    h = int(rng.integers(96, 129))
    w = int(min(160, round(h * rng.uniform(1.0, 1.35))))
    skin = np.array([0.86, 0.66, 0.56]) + rng.normal(0, [0.04, 0.04, 0.04])
    tex = _smooth_noise(rng, (h, w), h / 10)[..., None]
    fine = _smooth_noise(rng, (h, w, 3), 0.7) * 0.012
    img = skin * (1 + 0.05 * tex) + fine

    mask = _lesion_mask(rng, h, w)
    darkness = rng.uniform(0.22, 0.55)
    tint = np.array([1.0, rng.uniform(0.78, 0.95), rng.uniform(0.7, 0.95)])
    blotch = _smooth_noise(rng, (h, w), rng.uniform(1.5, 4.0))
    factor = (1 - darkness * (1 + 0.35 * blotch))[..., None] * tint
    spots = (_smooth_noise(rng, (h, w), 1.0) > 1.6)[..., None] * rng.uniform(0, 0.25)
    lesion_col = np.clip(img * factor - spots, 0, 1)
    alpha = ndimage.gaussian_filter(mask.astype(np.float64), rng.uniform(0.6, 2.0))[..., None]
    img = img * (1 - alpha) + lesion_col * alpha

    hair = _hair(rng, h, w)[..., None]
    hair_col = np.array([0.18, 0.12, 0.09]) * rng.uniform(0.6, 1.3)
    img = img * (1 - hair) + hair_col * hair

    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
    start = rng.uniform(0.75, 1.05)
    vignette = np.clip(1 - rng.uniform(0.6, 1.6) * np.clip(r - start, 0, None), 0.05, 1)
    img = img * vignette[..., None] * rng.uniform(0.9, 1.05)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), (mask * 255).astype(np.uint8)


# --------------------------------------------------------------------------- 3-D phantoms


def _rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    rot = np.eye(3)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


def msd_affine(rng: np.random.Generator, zooms: np.ndarray) -> np.ndarray:
    """Oblique, flipped and permuted voxel-to-world affine with a non-zero origin.

    Stored axes are (i, j, k) -> world roughly (-x, -z, +y) ("LIA"-like),
    tilted by a few degrees, so ``as_closest_canonical`` must permute and flip.
    """
    perm = np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
    rot = _rotation(0, rng.uniform(4, 12)) @ _rotation(2, rng.uniform(-8, 8))
    affine = np.eye(4)
    affine[:3, :3] = rot @ perm @ np.diag(zooms)
    affine[:3, 3] = [rng.uniform(60, 90), rng.uniform(-130, -100), rng.uniform(30, 60)]
    return affine


def msd_phantom(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One head-like MRI phantom: int16 image, uint8 label (0/1/2), voxel spacing (mm)."""
    shape = (int(rng.integers(36, 45)), int(rng.integers(44, 53)), int(rng.integers(28, 37)))
    zooms = np.array([1.0, 1.0, 1.5]) * rng.uniform(0.95, 1.05)
    grid = np.stack(np.meshgrid(*[np.arange(n) * z for n, z in zip(shape, zooms)], indexing="ij"), -1)
    centre = np.array(shape) * zooms / 2
    semi = np.array(shape) * zooms * rng.uniform(0.44, 0.5, 3)
    head = (((grid - centre) / semi) ** 2).sum(-1) < 1.0

    # two adjacent structures along one curved centre line: first part 1, rest 2
    length = rng.uniform(28, 38)
    direction = np.array([0.15, 1.0, rng.uniform(-0.2, 0.2)])
    direction /= np.linalg.norm(direction)
    bend = np.array([1.0, -0.1, rng.uniform(-0.3, 0.3)])
    bend -= bend.dot(direction) * direction
    bend /= np.linalg.norm(bend)
    start = centre - direction * length / 2 + rng.uniform(-3, 3, 3)
    s = np.linspace(0, 1, 48)
    curve = start + s[:, None] * length * direction + (rng.uniform(2, 6) * np.sin(np.pi * s))[:, None] * bend
    radius = rng.uniform(4.6, 6.0) * (1.15 - 0.4 * s + 0.12 * np.sin(2 * np.pi * s + rng.uniform(0, 6)))
    # only voxels in the curve's bounding box (+ max radius) can be inside: saves time, same result
    near = head & np.all(
        np.abs(grid - (curve.max(0) + curve.min(0)) / 2) <= (curve.max(0) - curve.min(0)) / 2 + radius.max() + 1,
        axis=-1,
    )
    pts = grid[near]
    d = np.sqrt(((pts[:, None, :] - curve[None]) ** 2).sum(-1)) - radius[None]
    nearest = d.argmin(1)
    inside = d[np.arange(len(pts)), nearest] < 0
    split_at = rng.uniform(0.38, 0.55)
    label = np.zeros(shape, np.uint8)
    label[near] = np.where(inside, np.where(s[nearest] < split_at, 1, 2), 0)

    tissue = 380 + 25 * _smooth_noise(rng, shape, 2.0)
    image = np.where(head, tissue, 0.0)
    image[label == 1] = rng.uniform(590, 650) + 15 * _smooth_noise(rng, shape, 1.0)[label == 1]
    image[label == 2] = rng.uniform(490, 530) + 15 * _smooth_noise(rng, shape, 1.0)[label == 2]
    ventricle = (((grid - centre - rng.uniform(-4, 4, 3)) / (semi * 0.25)) ** 2).sum(-1) < 1.0
    image[ventricle & (label == 0)] = 150
    image = ndimage.gaussian_filter(image, 0.6)  # partial-volume blur at the boundaries
    coords = (grid - centre) / semi
    bias = 1 + sum(rng.uniform(-0.12, 0.12) * coords[..., a] for a in range(3))
    bias = bias + rng.uniform(-0.06, 0.06) * coords[..., 0] * coords[..., 1]
    image = image * bias + rng.normal(0, 18, shape)
    image = np.where(head, np.clip(image, 1, None), 0).round().astype(np.int16)
    return image, label, zooms
