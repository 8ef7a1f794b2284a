"""Compose a batch of images by pasting cached sprites at integer offsets onto an empty canvas.

Procedural datasets pre-render every (shape, size, rotation, ...) combination once as a small sprite; a
batch is then a gather plus one scatter into a zeroed buffer, with no per-image Python work. The scatter
goes through flat indices because numpy writes a 1-D fancy index several times faster than the
equivalent three-axis one.
"""

from __future__ import annotations

import numpy as np


def place(
    sprites: np.ndarray, which: np.ndarray, top: np.ndarray, left: np.ndarray, canvas: tuple[int, int]
) -> np.ndarray:
    """Paste ``sprites[which[b]]`` with its top-left corner at (top[b], left[b]) on a zero canvas.

    sprites: (S, h, w) float32; which, top, left: (B,) int; canvas: (H, W).
    Returns (B, H, W) float32. Every sprite must lie fully inside the canvas: callers choose offsets so.
    """
    _, h, w = sprites.shape
    height, width = canvas
    batch = which.shape[0]
    if batch and (top.min() < 0 or left.min() < 0 or top.max() + h > height or left.max() + w > width):
        raise ValueError(f"offsets: a {h}x{w} sprite must fit inside the {height}x{width} canvas")
    out = np.zeros(batch * height * width, dtype=np.float32)
    corner = np.arange(batch, dtype=np.int64) * (height * width) + top * width + left  # (B,)
    window = (np.arange(h, dtype=np.int64) * width)[:, None] + np.arange(w, dtype=np.int64)[None, :]  # (h, w)
    out[(corner[:, None, None] + window[None]).ravel()] = sprites[which].ravel()  # (B*h*w,)
    return out.reshape(batch, height, width)
