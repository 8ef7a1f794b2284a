"""The one tiling of images into a grid: ``/traverse``'s grid and GIF frames, and the model card's pictures.

tile(images)                                   # (rows, cols, C, H, W) -> uint8, tiles 2 px apart on dark grey
tile(images, background=CARD_BACKGROUND, margin=2)   # the card's light grey, with a border
"""

from __future__ import annotations

import numpy as np

from contract.images import to_pixels

GAP = 2
BACKGROUND = 32  # the service's dark grey: tiles of a black-background dataset stay apart
CARD_BACKGROUND = 217  # the card's light grey (0.85), which separates tiles on a white page


def tile(images: np.ndarray, gap: int = GAP, background: int = BACKGROUND, margin: int = 0) -> np.ndarray:
    """(rows, cols, C, H, W) float in [0, 1] -> one (H', W') or (H', W', 3) uint8 grid: row r, column c holds
    ``images[r, c]``, tiles ``gap`` px apart on ``background``, with ``margin`` px of it around them."""
    rows, cols, _, h, w = images.shape
    pixels = to_pixels(images.reshape(rows * cols, *images.shape[2:]))  # (rows * cols, h, w[, 3])
    height, width = rows * (h + gap) - gap + 2 * margin, cols * (w + gap) - gap + 2 * margin
    grid = np.full((height, width, *pixels.shape[3:]), background, dtype=np.uint8)
    for i, tile_pixels in enumerate(pixels):
        r, c = divmod(i, cols)
        top, left = margin + r * (h + gap), margin + c * (w + gap)
        grid[top : top + h, left : left + w] = tile_pixels
    return grid
