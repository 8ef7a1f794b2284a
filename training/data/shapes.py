"""The three dSprites shapes as exact geometry, and their rasterisation into binary sprites.

dSprites (Matthey et al. 2017, github.com/deepmind/dsprites-dataset) publishes images, not its generator.
These figures were measured from 320 frames of the original (``tests/reference/dsprites/dsprites.gif``): a
pixel is on when its centre lies inside the shape (no anti-aliasing). With that rule, and the original's
sub-pixel placement, the shapes below reproduce the lit pixels of all 320 frames with under 0.5% mismatched:

- square: side 19.2 px at scale 1, which covers exactly 20 x 20 pixels when axis-aligned (20*scale px at
  every scale of the grid); a rotated square keeps its true area, about 368 px;
- ellipse: semi-axes 12.75 x 7.25 px at scale 1 (26 x 14 pixels when axis-aligned), the long axis
  horizontal at orientation 0;
- heart: the polygon ``HEART_OUTLINE``, fitted vertex by vertex to the frames: 19.5 px wide, 18.5 px tall
  (20 x 17 pixels), pointed bottom, notch on top, upright at orientation 0.

Coordinates are in pixels relative to the rotation centre, x to the right and y down. Orientation turns
the shape counter-clockwise on screen, as in the original (its heart's top swings left as the angle grows).
"""

from __future__ import annotations

import numpy as np

SHAPES = ("square", "ellipse", "heart")
# Rotational symmetry: each shape looks the same after a turn of 2*pi/k (the heart is mirror-symmetric only).
SYMMETRY = {"square": 4, "ellipse": 2, "heart": 1}
SQUARE_SIDE = 19.2
ELLIPSE_SEMI_AXES = (12.75, 7.25)  # (along x, along y) at orientation 0

# The right half of the heart at scale 1, from the bottom of the notch round to the tip; the left half
# mirrors it. Measured from the reference frames (coordinate descent on the count of mismatched pixels).
_HEART_RIGHT = np.array(
    [
        (0.0, -5.25), (0.2, -5.65), (0.44, -6.28), (0.76, -7.21), (1.2, -7.61), (1.73, -8.12),
        (2.51, -8.75), (3.32, -9.12), (4.35, -9.33), (5.38, -9.31), (6.34, -9.05), (7.2, -8.58),
        (7.92, -7.92), (8.66, -7.26), (9.44, -5.45), (9.73, -3.54), (9.06, -1.6), (8.15, 0.0),
        (7.14, 1.26), (6.2, 2.26), (5.33, 3.07), (4.56, 3.82), (3.79, 4.52), (3.05, 5.28),
        (2.21, 6.06), (1.28, 7.24), (0.0, 9.2),
    ]
)  # fmt: skip
HEART_OUTLINE = np.concatenate([_HEART_RIGHT, _HEART_RIGHT[-2:0:-1] * np.array([-1.0, 1.0])])  # (V, 2)


def inside_polygon(x: np.ndarray, y: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule: a point is inside when a ray to its left crosses the outline an odd number of times.

    x, y: any matching shape; polygon: (V, 2) vertices in order. Returns a bool array shaped like x.
    """
    inside = np.zeros(x.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        if y1 == y2:
            continue  # a horizontal edge is never crossed by a horizontal ray
        spans = (y1 > y) != (y2 > y)
        crossing_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= spans & (x < crossing_x)
    return inside


def inside_shape(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points (u, v), in the shape's own unrotated frame at scale 1, lie inside it."""
    if shape == "square":
        half = SQUARE_SIDE / 2
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape == "ellipse":
        a, b = ELLIPSE_SEMI_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if shape == "heart":
        return inside_polygon(u, v, HEART_OUTLINE)
    raise ValueError(f"shape: expected one of {SHAPES}, got {shape!r}")


def render_sprites(scales: np.ndarray, orientations: np.ndarray, size: int) -> np.ndarray:
    """Every (shape, scale, orientation) as a binary size x size sprite centred on the point (size/2, size/2).

    scales: (S,); orientations: (O,) radians. Returns (len(SHAPES), S, O, size, size) bool.
    """
    centres = np.arange(size) + 0.5 - size / 2  # pixel centres relative to the rotation centre
    y, x = np.meshgrid(centres, centres, indexing="ij")  # (size, size)
    cos = np.cos(orientations)[None, :, None, None]  # (1, O, 1, 1)
    sin = np.sin(orientations)[None, :, None, None]
    scale = np.asarray(scales, dtype=np.float64)[:, None, None, None]  # (S, 1, 1, 1)
    # Undo the counter-clockwise on-screen rotation (y points down), then the scaling.
    u = (x * cos - y * sin) / scale  # (S, O, size, size)
    v = (x * sin + y * cos) / scale
    return np.stack([inside_shape(shape, u, v) for shape in SHAPES])
