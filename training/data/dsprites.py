"""dSprites, re-created procedurally: 737,280 binary 64x64 images on the original factor grid.

Factors, in index order (posY varies fastest, as in the original ``dsprites_ndarray_...npz``):
  shape        "square", "ellipse", "heart"
  scale        linspace(0.5, 1, 6)
  orientation  linspace(0, 2*pi, 40) radians, counter-clockwise on screen (0 and 2*pi render alike)
  posX         linspace(0, 1, 32), left to right
  posY         linspace(0, 1, 32), top to bottom (image rows)

The shape's centre moves over [16, 48] px on each axis. The original places it at 16 + 32*pos exactly;
here it snaps to the nearest whole pixel, so that a batch is a paste of the 720 cached
(shape, scale, orientation) sprites (``placement.place``): the shape and its pixel count are the same at
every position, where the original's drift by up to 3% with the sub-pixel phase. Geometry: ``shapes``.

Usage: ``DSprites().images(np.array([0, 737279]))`` -> (2, 1, 64, 64) float32 in {0, 1}.
"""

from __future__ import annotations

import numpy as np

from training.data.base import Factor, FactorDataset
from training.data.placement import place
from training.data.shapes import SHAPES, SYMMETRY, render_sprites

IMAGE_SIZE = 64
SPRITE_SIZE = 32  # holds every shape at scale 1 and any orientation (the square's half-diagonal is 13.6 px)
POSITION_SPAN = 32  # the centre moves from 16 to 48 px
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)


class DSprites(FactorDataset):
    name = "dsprites"
    image_shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self) -> None:
        sprites = render_sprites(SCALES, ORIENTATIONS, SPRITE_SIZE)  # (3, 6, 40, 32, 32)
        self._sprites = sprites.reshape(-1, SPRITE_SIZE, SPRITE_SIZE).astype(np.float32)  # (720, 32, 32)
        # A sprite's centre is its own (16, 16), so its top-left corner sits at the centre's offset from 16.
        self._offsets = np.rint(POSITIONS * POSITION_SPAN).astype(np.int64)  # (32,) in [0, 32]
        self._factors = [
            Factor("shape", list(SHAPES)),
            Factor("scale", SCALES.tolist()),
            Factor("orientation", ORIENTATIONS.tolist()),
            Factor("posX", POSITIONS.tolist()),
            Factor("posY", POSITIONS.tolist()),
        ]

    @property
    def factors(self) -> list[Factor]:
        return self._factors

    def tie_targets(self, name: str, classes: np.ndarray) -> np.ndarray:
        """The orientation as (cos k*theta, sin k*theta), k the shape's rotational symmetry: the pair is what
        the image shows (a square at 0 and at 90 degrees is one image), so an encoder can be tied to it, and it
        has no seam at 2*pi. Other factors as ``FactorDataset.tie_targets``."""
        if name != "orientation":
            return super().tie_targets(name, classes)
        k = np.array([SYMMETRY[s] for s in SHAPES])[classes[:, 0]]  # (N,)
        angle = k * ORIENTATIONS[classes[:, 2]]  # (N,)
        return np.stack([np.cos(angle), np.sin(angle)], axis=1)

    def images(self, indices: np.ndarray) -> np.ndarray:
        classes = self.index_to_factors(indices)  # (B, 5)
        shape, scale, orientation, pos_x, pos_y = classes.T
        sprite = (shape * SCALES.size + scale) * ORIENTATIONS.size + orientation  # (B,)
        top, left = self._offsets[pos_y], self._offsets[pos_x]
        return place(self._sprites, sprite, top, left, (IMAGE_SIZE, IMAGE_SIZE))[:, None]  # (B, 1, 64, 64)
