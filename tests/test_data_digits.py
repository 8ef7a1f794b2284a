"""Digits: the exact factor grid, every image inside the frame, legible glyphs, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from training.data.digits import Digits

DIGIT, SCALE, ROTATION, POS_X, POS_Y, THICKNESS = range(6)
SIZES = [10, 4, 7, 9, 9, 4]
UPRIGHT, CENTRE, OWN_STROKE = 3, 4, 2  # classes: rotation 0, position 0.5, the font's own stroke width
INK = 0.25  # a pixel at least a quarter lit counts as ink when looking for enclosed counters


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits()


def grid(**fixed: int) -> np.ndarray:
    """(N, 6) classes of every combination, the factors named in ``fixed`` held at the given class."""
    names = ["digit", "scale", "rotation", "pos_x", "pos_y", "thickness"]
    axes = [np.array([fixed[n]]) if n in fixed else np.arange(s) for n, s in zip(names, SIZES, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 6)


def enclosed_background(images: np.ndarray) -> np.ndarray:
    """(B, H, W) grey -> (B, H, W) bool: background pixels that no background path joins to the frame's edge
    (the counters of 0, 4, 6, 8, 9), found by growing the outside inwards from the border."""
    background = images < INK
    outside = np.zeros_like(background)
    outside[:, [0, -1], :] = background[:, [0, -1], :]
    outside[:, :, [0, -1]] = background[:, :, [0, -1]]
    while True:
        grown = outside.copy()
        grown[:, 1:] |= outside[:, :-1]
        grown[:, :-1] |= outside[:, 1:]
        grown[:, :, 1:] |= outside[:, :, :-1]
        grown[:, :, :-1] |= outside[:, :, 1:]
        grown &= background
        if (grown == outside).all():
            return background & ~outside
        outside = grown


def test_the_grid_is_exact(digits: Digits) -> None:
    assert len(digits) == 10 * 4 * 7 * 9 * 9 * 4 == 90_720
    assert [f.name for f in digits.factors] == ["digit", "scale", "rotation", "posX", "posY", "thickness"]
    assert digits.factor_sizes.tolist() == SIZES
    values = {f.name: np.array(f.values, dtype=float) for f in digits.factors}
    np.testing.assert_array_equal(values["digit"], np.arange(10))
    np.testing.assert_allclose(values["rotation"], [-45, -30, -15, 0, 15, 30, 45])
    np.testing.assert_allclose(values["posX"], np.linspace(0, 1, 9))
    assert values["scale"].max() == 1.0 and values["thickness"][OWN_STROKE] == 0.0
    indices = np.random.default_rng(0).integers(0, len(digits), size=1000)
    np.testing.assert_array_equal(digits.factors_to_index(digits.index_to_factors(indices)), indices)


def test_no_combination_touches_the_border(digits: Digits) -> None:
    for start in range(0, len(digits), 8192):
        batch = digits.images(np.arange(start, min(start + 8192, len(digits))))[:, 0]  # (B, 64, 64)
        edges = [batch[:, 0], batch[:, -1], batch[:, :, 0], batch[:, :, -1]]  # each (B, 64)
        assert max(edge.max() for edge in edges) == 0.0, f"ink on the edge of an image in [{start}, +8192)"
        assert (batch.max(axis=(1, 2)) > 0.8).all()  # and every image shows its digit


def test_unrotated_centred_digits_are_told_apart_by_nearest_centroid(digits: Digits) -> None:
    # At every scale, each digit at each thickness is nearest to its own class's mean image over the other
    # thicknesses at that scale: no stroke width makes one digit look like another.
    classes = grid(rotation=UPRIGHT, pos_x=CENTRE, pos_y=CENTRE)  # (160, 6)
    images = digits.render(classes)[:, 0].reshape(10, 4, 4, -1)  # (digit, scale, thickness, pixels)
    for scale in range(4):
        for thickness in range(4):
            others = np.delete(images[:, scale], thickness, axis=1)  # (10, 3, pixels)
            centroids = others.mean(axis=1)  # (10, pixels)
            probe = images[:, scale, thickness]  # (10, pixels)
            distances = ((probe[:, None] - centroids[None]) ** 2).sum(axis=-1)  # (10, 10)
            nearest = distances.argmin(axis=1)
            np.testing.assert_array_equal(nearest, np.arange(10), f"scale {scale}, thickness {thickness}")


def test_counters_stay_closed_and_gaps_open_at_every_size_thickness_and_rotation(digits: Digits) -> None:
    classes = grid(pos_x=CENTRE, pos_y=CENTRE)  # every glyph, centred
    enclosed = enclosed_background(digits.render(classes)[:, 0])  # (N, 64, 64)
    area = enclosed.sum(axis=(1, 2))
    with_counters = np.isin(classes[:, DIGIT], [0, 4, 6, 8, 9])
    assert area[with_counters].min() >= 8
    # At most a stray pixel where two strokes meet at a sharp angle; a 5 closing into a 6 encloses 15 or more.
    assert area[~with_counters].max() <= 2
    # The 8 keeps both of its counters: enclosed background above and below its centre.
    eights = enclosed[classes[:, DIGIT] == 8]
    assert eights[:, :32].any(axis=(1, 2)).all() and eights[:, 32:].any(axis=(1, 2)).all()


def test_factors_move_and_shape_the_glyph_as_named(digits: Digits) -> None:
    def centroid(classes: list[int]) -> np.ndarray:
        image = digits.render(np.array([classes]))[0, 0]
        rows, cols = np.indices(image.shape)
        return np.array([(image * rows).sum(), (image * cols).sum()]) / image.sum()

    # "A small seven at the top, rotated 30 degrees": posY 0 keeps the ink in the upper half.
    small_seven = [7, 0, 5, 0, 0, OWN_STROKE]
    image = digits.render(np.array([small_seven]))[0, 0]
    assert image[32:].max() == 0.0 and image.max() > 0.9
    # posX moves the glyph right 3 px a step and posY down, intact (whole-pixel placement).
    start = centroid(small_seven)
    np.testing.assert_allclose(centroid([7, 0, 5, 1, 0, OWN_STROKE]) - start, [0, 3], atol=1e-4)
    np.testing.assert_allclose(centroid([7, 0, 5, 0, 8, OWN_STROKE]) - start, [24, 0], atol=1e-4)
    # Larger scale and thicker strokes mean more ink.
    ink = digits.render(np.array([[8, s, UPRIGHT, CENTRE, CENTRE, t] for s in (0, 3) for t in (0, 3)]))
    small_thin, small_bold, large_thin, large_bold = ink.sum(axis=(1, 2, 3))
    assert small_thin < small_bold < large_bold and small_thin < large_thin < large_bold
    # Rotation is counter-clockwise on screen: a 1 leaning by +45 degrees has its top left of its bottom.
    leaning = digits.render(np.array([[1, 3, 6, CENTRE, CENTRE, OWN_STROKE]]))[0, 0] > 0.5
    rows = np.flatnonzero(leaning.any(axis=1))
    assert np.flatnonzero(leaning[rows[0]]).mean() < np.flatnonzero(leaning[rows[-1]]).mean()


def test_images_are_grey_float32_and_deterministic(digits: Digits) -> None:
    indices = np.random.default_rng(1).integers(0, len(digits), size=256)
    batch = digits.images(indices)
    assert batch.shape == (256, 1, 64, 64) and batch.dtype == np.float32
    assert batch.min() == 0.0 and batch.max() <= 1.0
    assert ((batch > 0.1) & (batch < 0.9)).mean() > 0.001  # anti-aliased edges
    np.testing.assert_array_equal(batch, Digits().images(indices))
