"""Digits: the glyphs 0-9 on an exact product grid of six factors, 64x64 anti-aliased grey ("a small seven at
the top, rotated 30 degrees" is one index).

Factors, in index order (the last varies fastest):
  digit      0..9
  scale      linspace(0.7, 1, 4): the digit stands 24*scale px tall (16.8 to 24 px)
  rotation   -45, -30, ..., 45 degrees (7 values), counter-clockwise on screen, about the glyph's centre
  posX       linspace(0, 1, 9): the glyph's centre at column 20 + 24*posX px (20, 23, ..., 44), left to right
  posY       linspace(0, 1, 9): likewise for rows, top to bottom
  thickness  -1, -0.5, 0, 0.5: px added to the stroke width at scale 1 (in proportion at smaller scales, so
             a digit looks the same at every size); 0 is the font's own stroke, about 3 px wide

10 * 4 * 7 * 9 * 9 * 4 = 90,720 images. The grid was chosen so that every combination stays clear of the
frame (the largest glyph, rotated 45 degrees, reaches 15 px from its centre, and the centre stays 20 px
from the edge) and legible: the counters of 0, 4, 6, 8 and 9 stay closed, and the narrow gap in this font's
5 stays open. That gap is why scales stop at 0.7 and strokes grow by at most 0.5 px: smaller or bolder,
the anti-aliased 5 closes into a 6.
Pixel values are anti-aliased grey levels in [0, 1]; glyphs come from ``glyphs`` (Pillow's built-in font).

Usage: ``Digits().images(np.array([0]))`` -> (1, 1, 64, 64) float32.
"""

from __future__ import annotations

import numpy as np

from training.data.base import Factor, FactorDataset
from training.data.glyphs import digit_sprites
from training.data.placement import place

IMAGE_SIZE = 64
SPRITE_SIZE = 36  # the largest digit, rotated 45 degrees, spans 29 px: room for the bilinear fringe
HEIGHT = 24.0  # px of the digit at scale 1
SCALES = np.linspace(0.7, 1.0, 4)
ROTATIONS = np.linspace(-45.0, 45.0, 7)
POSITIONS = np.linspace(0.0, 1.0, 9)
FIRST_CENTRE, POSITION_SPAN = 20, 24  # px: centres 20, 23, ..., 44, whole pixels
THICKNESSES = np.array([-1.0, -0.5, 0.0, 0.5])


# A digit on this canvas, the factors `digits` and `handwriting` share (the same values, the same units).
CANVAS_FACTORS = (
    Factor("digit", list(range(10))),
    Factor("scale", SCALES.tolist()),
    Factor("rotation", ROTATIONS.tolist()),
    Factor("posX", POSITIONS.tolist()),
    Factor("posY", POSITIONS.tolist()),
)


def position_shift(name: str) -> np.ndarray | None:
    """``tie_shift`` of a position on this canvas (None for other factors): its target moves 1 / (24 px * the
    grid's standard deviation) per pixel, its value being the centre, 20 + 24 * value px, standardised over the
    grid (``tie_targets``)."""
    if name not in ("posX", "posY"):
        return None
    rate = 1 / (POSITION_SPAN * POSITIONS.std())
    return np.array([[rate], [0.0]] if name == "posX" else [[0.0], [rate]])


class Digits(FactorDataset):
    name = "digits"
    image_shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self) -> None:
        sprites = digit_sprites(SCALES * HEIGHT, ROTATIONS, THICKNESSES, SPRITE_SIZE)  # (10, 4, 7, 4, 36, 36)
        self._sprites = sprites.reshape(-1, SPRITE_SIZE, SPRITE_SIZE)  # (1120, 36, 36)
        centres = FIRST_CENTRE + np.rint(POSITIONS * POSITION_SPAN).astype(np.int64)  # (9,)
        self._corners = centres - SPRITE_SIZE // 2  # a sprite's centre is its own (18, 18)
        self._factors = [*CANVAS_FACTORS, Factor("thickness", THICKNESSES.tolist())]

    @property
    def factors(self) -> list[Factor]:
        return self._factors

    def tie_shift(self, name: str) -> np.ndarray:
        shift = position_shift(name)
        return super().tie_shift(name) if shift is None else shift

    def images(self, indices: np.ndarray) -> np.ndarray:
        classes = self.index_to_factors(indices)  # (B, 6)
        digit, scale, rotation, pos_x, pos_y, thickness = classes.T
        sprite = ((digit * SCALES.size + scale) * ROTATIONS.size + rotation) * THICKNESSES.size + thickness
        top, left = self._corners[pos_y], self._corners[pos_x]
        return place(self._sprites, sprite, top, left, (IMAGE_SIZE, IMAGE_SIZE))[:, None]  # (B, 1, 64, 64)
