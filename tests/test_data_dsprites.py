"""dSprites: the factor grid, exact pixels of known cases, and agreement with frames of the original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from training.data.dsprites import DSprites

REFERENCE = Path(__file__).parent / "reference" / "dsprites" / "dsprites.gif"
SHAPE, SCALE, ORIENTATION, POS_X, POS_Y = range(5)
SQUARE, ELLIPSE, HEART = range(3)
Reference = tuple[np.ndarray, np.ndarray]  # the original frames (N, 64, 64) bool, their factors (N, 5)


@pytest.fixture(scope="module")
def dsprites() -> DSprites:
    return DSprites()


def reference_sequence() -> np.ndarray:
    """(320, 5) factor classes of the reference frames, read off the animation by eye: a walk through the
    factors, one at a time, each segment starting from the last frame of the one before."""
    rows: list[list[int]] = []

    def walk(shape: int, factor: int, values: range, orientation: int = 0, x: int = 0, y: int = 0) -> None:
        for value in values:
            row = [shape, 5, orientation, x, y]
            row[factor] = value
            rows.append(row)

    up, down = range(6), range(5, -1, -1)
    for shape in (HEART, ELLIPSE, SQUARE):
        for sweep in (up, down, up):
            walk(shape, SCALE, sweep)
        walk(shape, ORIENTATION, range(40))
        if shape == HEART:  # only the heart tours the frame: down, right, up, left
            walk(shape, POS_Y, range(32), orientation=39)
            walk(shape, POS_X, range(32), orientation=39, y=31)
            walk(shape, POS_Y, range(31, -1, -1), orientation=39, x=31)
            walk(shape, POS_X, range(31, -1, -1), orientation=39)
        walk(shape, SCALE, down, orientation=39)
    return np.array(rows)


@pytest.fixture(scope="module")
def reference() -> Reference:
    frames = np.array([np.array(f.convert("L")) > 127 for f in ImageSequence.Iterator(Image.open(REFERENCE))])
    factors = reference_sequence()
    assert factors.shape == (frames.shape[0], 5)
    return frames, factors


@pytest.fixture(scope="module")
def ours(dsprites: DSprites, reference: Reference) -> np.ndarray:
    return dsprites.render(reference[1])[:, 0] > 0.5  # (320, 64, 64)


def centroids(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool -> (N, 2) mean (row, col) of the on pixels."""
    rows, cols = np.indices(masks.shape[1:])
    area = masks.sum(axis=(1, 2))
    return np.stack([(masks * rows).sum(axis=(1, 2)) / area, (masks * cols).sum(axis=(1, 2)) / area], axis=1)


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(first row, last row, first col, last col) of the on pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def test_the_grid_is_the_original_one(dsprites: DSprites) -> None:
    assert len(dsprites) == 737_280
    assert [f.name for f in dsprites.factors] == ["shape", "scale", "orientation", "posX", "posY"]
    assert dsprites.factor_sizes.tolist() == [3, 6, 40, 32, 32]
    shape, *numeric = dsprites.factors
    assert shape.values == ["square", "ellipse", "heart"]
    positions = np.linspace(0, 1, 32)
    expected = [np.linspace(0.5, 1, 6), np.linspace(0, 2 * np.pi, 40), positions, positions]
    for factor, values in zip(numeric, expected, strict=True):
        np.testing.assert_allclose(np.array(factor.values, dtype=float), values, err_msg=factor.name)
    info = dsprites.info()
    assert info.size == 737_280 and [f.name for f in info.factors] == [
        "shape",
        "scale",
        "orientation",
        "posX",
        "posY",
    ]


def test_index_and_factors_round_trip_with_posy_fastest(dsprites: DSprites) -> None:
    indices = np.random.default_rng(0).integers(0, len(dsprites), size=1000)
    classes = dsprites.index_to_factors(indices)
    np.testing.assert_array_equal(dsprites.factors_to_index(classes), indices)
    np.testing.assert_array_equal(dsprites.index_to_factors(np.array([1, 32, 1024])), [
        [0, 0, 0, 0, 1],  # the next index moves posY
        [0, 0, 0, 1, 0],
        [0, 0, 1, 0, 0],
    ])  # fmt: skip
    assert dsprites.index_to_factors(np.array([len(dsprites) - 1])).tolist() == [[2, 5, 39, 31, 31]]


def test_posy_moves_rows_and_posx_moves_columns(dsprites: DSprites) -> None:
    # A square at scale 1 and orientation 0: its position steps are whole pixels, so steps shift it intact.
    base = dsprites.factors_to_index(np.array([[SQUARE, 5, 0, 0, 0]]))[0]
    first, down, right = dsprites.images(np.array([base, base + 1, base + 32]))[:, 0]
    np.testing.assert_array_equal(down, np.roll(first, 1, axis=0))
    np.testing.assert_array_equal(right, np.roll(first, 1, axis=1))


@pytest.mark.parametrize(("scale", "side"), [(0, 10), (2, 14), (5, 20)])
def test_an_upright_square_is_20_scale_pixels_on_a_side(dsprites: DSprites, scale: int, side: int) -> None:
    corner, far = dsprites.render(np.array([[SQUARE, scale, 0, 0, 0], [SQUARE, scale, 0, 31, 31]]))[:, 0]
    assert corner.sum() == side * side
    # The centre sits on the pixel corner (16, 16) at position 0 and on (48, 48) at position 1.
    assert bbox(corner > 0) == (16 - side // 2, 15 + side // 2, 16 - side // 2, 15 + side // 2)
    assert bbox(far > 0) == (48 - side // 2, 47 + side // 2, 48 - side // 2, 47 + side // 2)
    np.testing.assert_array_equal(corner[corner > 0], 1.0)


def test_the_heart_is_upright_with_a_notch_on_top_and_a_point_below(dsprites: DSprites) -> None:
    heart = dsprites.render(np.array([[HEART, 5, 0, 15, 15]]))[0, 0] > 0.5
    top, bottom, left, right = bbox(heart)
    assert (bottom - top + 1, right - left + 1) == (17, 20)
    top_row = heart[top].astype(np.int8)
    assert np.count_nonzero(np.diff(top_row) == 1) == 2  # two lobes, the notch between them
    assert heart[bottom].sum() <= 2  # the point
    assert centroids(heart[None])[0, 0] < (top + bottom) / 2  # more ink above than below


def test_the_ellipse_is_wider_than_tall_at_orientation_zero(dsprites: DSprites) -> None:
    flat, turned = dsprites.render(np.array([[ELLIPSE, 5, 0, 15, 15], [ELLIPSE, 5, 10, 15, 15]]))[:, 0] > 0.5
    top, bottom, left, right = bbox(flat)
    assert (bottom - top + 1, right - left + 1) == (14, 26)
    top, bottom, left, right = bbox(turned)  # a quarter turn: 10 of the 39 steps of 2*pi
    assert bottom - top > right - left


def test_images_are_binary_float32_and_deterministic(dsprites: DSprites) -> None:
    indices = np.random.default_rng(1).integers(0, len(dsprites), size=256)
    batch = dsprites.images(indices)
    assert batch.shape == (256, 1, 64, 64) and batch.dtype == np.float32
    assert set(np.unique(batch).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(batch, DSprites().images(indices))
    np.testing.assert_array_equal(batch[3:5], dsprites.images(indices[3:5]))
    # The shape stays inside the frame everywhere on the grid.
    assert not batch[:, :, [0, -1], :].any() and not batch[:, :, :, [0, -1]].any()


def test_bad_indices_get_a_clear_error(dsprites: DSprites) -> None:
    with pytest.raises(IndexError, match=r"indices: expected values in \[0, 737280\), got 737280"):
        dsprites.images(np.array([0, 737_280]))
    with pytest.raises(ValueError, match="indices: expected integers, got dtype float64"):
        dsprites.images(np.array([0.5]))
    with pytest.raises(ValueError, match=r"indices: expected a 1-D array \(B,\), got shape \(2, 2\)"):
        dsprites.images(np.zeros((2, 2), dtype=np.int64))


def test_frames_match_the_original_pixel_for_pixel(reference: Reference, ours: np.ndarray) -> None:
    frames, factors = reference
    mismatched = (frames != ours).sum(axis=(1, 2))
    area = frames.sum(axis=(1, 2))
    # Where the original centre falls on a whole pixel (positions 0 and 1), shapes agree to 2% of their area.
    whole = np.isin(factors[:, POS_X], [0, 31]) & np.isin(factors[:, POS_Y], [0, 31])
    assert whole.sum() == 200
    assert (mismatched[whole] <= 0.02 * area[whole]).all()
    # Elsewhere the original sits up to half a pixel off ours, which snaps to whole pixels: one row or column.
    assert (mismatched <= 0.15 * area).all()


def test_areas_per_shape_and_scale_match_the_original(reference: Reference, ours: np.ndarray) -> None:
    frames, factors = reference
    for shape in (SQUARE, ELLIPSE, HEART):
        for scale in range(6):
            of_shape = (factors[:, SHAPE] == shape) & (factors[:, SCALE] == scale)
            upright = of_shape & (factors[:, ORIENTATION] == 0)
            theirs, mine = frames[upright].sum(axis=(1, 2)), ours[upright].sum(axis=(1, 2))
            np.testing.assert_allclose(mine, theirs, rtol=0.02, err_msg=f"shape {shape}, scale {scale}")
    # Turned shapes keep their area (the square's drops to about 368 px: its true side is 19.2 px).
    np.testing.assert_allclose(ours.sum(axis=(1, 2)), frames.sum(axis=(1, 2)), rtol=0.05)


def test_extents_and_positions_match_the_original(reference: Reference, ours: np.ndarray) -> None:
    frames, factors = reference
    edges = np.array([np.subtract(bbox(a), bbox(b)) for a, b in zip(frames, ours, strict=True)])
    whole = np.isin(factors[:, POS_X], [0, 31]) & np.isin(factors[:, POS_Y], [0, 31])
    # Every edge of the bounding box within a pixel of the original's, two where it sits between pixels.
    assert np.abs(edges[whole]).max() <= 1
    assert np.abs(edges).max() <= 2
    # The centroid covers the same range over the frame, to half a pixel, and follows it frame by frame.
    theirs_c, mine_c = centroids(frames), centroids(ours)
    np.testing.assert_allclose(mine_c.min(axis=0), theirs_c.min(axis=0), atol=0.5)
    np.testing.assert_allclose(mine_c.max(axis=0), theirs_c.max(axis=0), atol=0.5)
    assert np.abs(mine_c - theirs_c).max() <= 1.0
