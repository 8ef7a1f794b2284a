"""The writer's hand measured from the pixels: stroke thickness and slant, for evaluation (never a training factor).

    thickness(glyphs)   # (B,) px: ink area / stroke length (the skeleton's)
    slant(glyphs)       # (B,) x px per y px the strokes lean to the right going up

Both take (B, H, W) grey images in [0, 1] and threshold the ink at 0.5. The thickness is the ink's area over
the length of its strokes, read from its skeleton (Zhang and Suen 1984's thinning, one skeleton pixel a unit of
length): a stroke w px wide and L px long has area about w * L. The slant is the shear that MNIST deskewing
removes (LeCun et al. 1998): the ink's second moments give cov(x, y) / var(y) with y down, negated so that a
glyph whose top leans right has a positive slant.
"""

from __future__ import annotations

import numpy as np

INK = 0.5


def _neighbours(mask: np.ndarray) -> list[np.ndarray]:
    """The 8 neighbours of every pixel, P2..P9 clockwise from north (Zhang and Suen's order): 8 x (B, H, W)."""
    p = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    h, w = mask.shape[1:]
    offsets = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]
    return [p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets]


def skeleton(mask: np.ndarray) -> np.ndarray:
    """(B, H, W) bool -> its one-pixel-wide skeleton by Zhang-Suen thinning, all images at once."""
    out = mask.astype(np.uint8)
    while True:
        changed = False
        for first in (True, False):
            n = _neighbours(out)
            count = sum(n)  # B(P1): ink neighbours
            ring = [*n, n[0]]
            transitions = sum(((a == 0) & (b == 1)).astype(np.uint8) for a, b in zip(ring[:-1], ring[1:], strict=True))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            if first:
                side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                side = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            remove = (out == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & side
            if remove.any():
                out[remove] = 0
                changed = True
        if not changed:
            return out.astype(bool)


def thickness(glyphs: np.ndarray) -> np.ndarray:
    """(B, H, W) -> (B,) stroke thickness t in px: ink area / stroke length (0 for an empty image).

    Thinning stops about t/2 short of every stroke end, so the length is the skeleton's pixel count plus t/2
    per end (a skeleton pixel with one neighbour): area = t * (pixels + ends * t / 2), solved for t."""
    mask = glyphs >= INK
    lines = skeleton(mask)
    pixels = lines.sum(axis=(1, 2)).astype(np.float64)
    ends = ((sum(_neighbours(lines.astype(np.uint8))) == 1) & lines).sum(axis=(1, 2)).astype(np.float64)
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    a = ends / 2
    root = (-pixels + np.sqrt(pixels**2 + 4 * a * area)) / np.maximum(2 * a, 1e-12)
    t = np.where(ends > 0, root, area / np.maximum(pixels, 1))
    return np.where(pixels > 0, t, 0.0)


def slant(glyphs: np.ndarray) -> np.ndarray:
    """(B, H, W) -> (B,) -cov(x, y) / var(y) of the ink (grey levels as weights): x px per y px up."""
    ink = np.where(glyphs >= INK, glyphs, 0.0).astype(np.float64)
    mass = np.maximum(ink.sum(axis=(1, 2)), 1e-12)
    ys, xs = np.mgrid[: glyphs.shape[1], : glyphs.shape[2]]
    mx = (ink * xs).sum(axis=(1, 2)) / mass
    my = (ink * ys).sum(axis=(1, 2)) / mass
    dx, dy = xs[None] - mx[:, None, None], ys[None] - my[:, None, None]
    cov = (ink * dx * dy).sum(axis=(1, 2)) / mass
    var = (ink * dy * dy).sum(axis=(1, 2)) / mass
    return -cov / np.maximum(var, 1e-12)
