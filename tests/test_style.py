"""The writer's hand measured from pixels: a bar's thickness is its width, a sheared bar's slant its shear."""

from __future__ import annotations

import numpy as np

from training.data.style import skeleton, slant, thickness


def sheared_bar(width: int, shear: float, length: int = 20) -> np.ndarray:
    """(28, 28): a bar ``width`` px wide whose rows move ``shear`` px right per px up."""
    image = np.zeros((28, 28))
    bottom = 4 + length
    for y in range(4, bottom):
        left = int(round(8 + (bottom - 1 - y) * shear))
        image[y, left : left + width] = 1.0
    return image


def test_thickness_is_the_stroke_width_and_slant_the_shear() -> None:
    bars = np.stack([sheared_bar(w, s) for w in (2, 3, 4, 5) for s in (0.0, 0.2, 0.4)])
    widths = np.repeat([2, 3, 4, 5], 3)
    shears = np.tile([0.0, 0.2, 0.4], 4)
    measured = thickness(bars)
    # The skeleton stops about half a width short of each end, so a wide bar reads a little thicker.
    assert np.all(np.abs(measured - widths) <= 0.15 * widths + 0.3), measured
    for s in (0.0, 0.2, 0.4):  # at every shear, thicker bars read thicker
        assert np.all(np.diff(measured[shears == s]) > 0)
    np.testing.assert_allclose(slant(bars), shears, atol=0.03)
    assert np.allclose(slant(bars[:, :, ::-1]), -shears, atol=0.03)  # mirrored, the lean turns left


def test_the_skeleton_of_a_bar_is_one_pixel_wide() -> None:
    bars = np.stack([sheared_bar(w, 0.0) for w in (2, 3, 5)])
    lines = skeleton(bars >= 0.5)
    assert lines.any(axis=(1, 2)).all()
    assert (lines.sum(axis=2) <= 1).all(), "more than one skeleton pixel in a row"
    assert np.all(thickness(np.zeros((1, 28, 28))) == 0.0)
