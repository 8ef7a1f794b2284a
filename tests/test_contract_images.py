"""The contract's one image preparation (contract/images.py), held against Pillow where Pillow has the
same operation, and the grid (contract/grid.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from contract.grid import tile
from contract.images import (
    ORIENTATION_TAG,
    crop_box,
    picture_input,
    prepare_array,
    prepare_pixels,
    resize,
    to_pixels,
    unit_range,
    upright_pixels,
)


def _with_orientation(pixels: np.ndarray, orientation: int) -> Image.Image:
    """A PNG of ``pixels`` carrying an EXIF orientation tag, opened again as a reader would get it."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_a_picture_as_pillows_exif_transpose_does(orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 256, size=(3, 5, 3), dtype=np.uint8)  # no symmetry
    expected = np.asarray(ImageOps.exif_transpose(_with_orientation(pixels, orientation)).convert("RGB"))
    got = upright_pixels(_with_orientation(pixels, orientation))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


def test_an_unknown_orientation_leaves_the_picture_as_stored() -> None:
    pixels = np.arange(30, dtype=np.uint8).reshape(5, 6)
    np.testing.assert_array_equal(upright_pixels(_with_orientation(pixels, 9)), pixels)  # grey stays (H, W)


@pytest.mark.parametrize(("size_in", "size_out"), [((96, 128), (64, 64)), ((17, 40), (64, 33)), ((64, 64), (9, 64))])
def test_resize_is_pillows_antialiased_lanczos(size_in: tuple[int, int], size_out: tuple[int, int]) -> None:
    plane = np.random.default_rng(0).random(size_in, dtype=np.float32)
    expected = np.asarray(Image.fromarray(plane, mode="F").resize(size_out[::-1], Image.Resampling.LANCZOS))
    got = resize(plane[None], *size_out)[0]
    assert got.shape == size_out and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_crop_box_is_the_largest_centred_box_of_the_models_aspect() -> None:
    assert crop_box(30, 90, 64, 64) == (slice(0, 30), slice(30, 60))
    assert crop_box(91, 30, 64, 64) == (slice(30, 60), slice(0, 30))  # the odd row left over goes below
    assert crop_box(64, 64, 64, 64) == (slice(0, 64), slice(0, 64))
    assert crop_box(100, 100, 32, 64) == (slice(25, 75), slice(0, 100))  # a wide model keeps half the rows


def test_a_picture_is_cropped_not_stretched() -> None:
    wide = np.zeros((30, 90, 3), dtype=np.uint8)
    wide[:, :30] = (255, 0, 0)
    wide[:, 30:60] = (0, 255, 0)  # red | green | blue thirds: only green is in the centred square
    wide[:, 60:] = (0, 0, 255)
    prepared = prepare_pixels(wide, (3, 16, 16))
    assert prepared.shape == (3, 16, 16) and prepared.dtype == np.uint8
    np.testing.assert_array_equal(prepared[:, 2:-2, 2:-2].reshape(3, -1).T, [[0, 255, 0]] * 144)


def test_a_picture_at_the_models_size_keeps_its_pixels_and_grey_is_601_luma() -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
    np.testing.assert_array_equal(prepare_pixels(grey, (1, 64, 64))[0], grey)
    np.testing.assert_array_equal(prepare_pixels(np.stack([grey] * 3, axis=-1), (1, 64, 64))[0], grey)
    np.testing.assert_array_equal(prepare_pixels(grey, (3, 64, 64)), np.stack([grey] * 3))
    colour = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    pillow_luma = np.asarray(Image.fromarray(colour).convert("L")).astype(int)
    assert np.abs(prepare_pixels(colour, (1, 64, 64))[0].astype(int) - pillow_luma).max() <= 1


def test_picture_input_is_the_whole_rule_and_arrays_share_its_resize() -> None:
    tall = np.random.default_rng(2).integers(0, 256, size=(100, 80, 3), dtype=np.uint8)
    picture = _with_orientation(tall, 6)  # stored sideways: upright it is 80 high and 100 wide
    prepared = picture_input(picture, (3, 40, 40))
    upright = np.rot90(tall, -1)
    assert upright.shape == (80, 100, 3)
    np.testing.assert_array_equal(prepared, prepare_pixels(upright, (3, 40, 40)))
    # A float array goes through the same crop and resize (no 8-bit rounding): within half a level of it.
    as_array = prepare_array(unit_range(np.ascontiguousarray(upright.transpose(2, 0, 1))), (3, 40, 40))
    assert as_array.dtype == np.float32 and 0.0 <= as_array.min() and as_array.max() <= 1.0
    assert np.abs(as_array * 255 - prepared).max() <= 0.5 + 1e-3


def test_to_pixels_rounds_half_up_and_clips() -> None:
    images = np.array([[[[0.0, 0.5 / 255, 1.5 / 255, 1.2, -0.1]]]], dtype=np.float32)  # (1, 1, 1, 5)
    assert to_pixels(images).tolist() == [[[0, 1, 2, 255, 0]]]
    assert to_pixels(np.zeros((2, 3, 4, 5), np.float32)).shape == (2, 4, 5, 3)


def test_tile_lays_images_out_in_rows_and_columns_with_gaps_and_a_margin() -> None:
    images = np.stack([np.full((1, 3, 2), v, np.float32) for v in (0.0, 1.0, 0.2, 0.4, 0.6, 0.8)]).reshape(
        2, 3, 1, 3, 2
    )
    grid = tile(images, gap=1, background=7)
    assert grid.shape == (2 * 3 + 1, 3 * 2 + 2)
    assert grid[0, 0] == 0 and grid[0, 3] == 255 and grid[4, 6] == to_pixels(images[1, 2][None])[0, 0, 0]
    assert (grid[3] == 7).all() and (grid[:, 2] == 7).all()  # the gap between rows, and between columns
    framed = tile(images, gap=1, background=7, margin=2)
    assert framed.shape == (grid.shape[0] + 4, grid.shape[1] + 4)
    np.testing.assert_array_equal(framed[2:-2, 2:-2], grid)
    assert (framed[:2] == 7).all() and (framed[:, -2:] == 7).all()
    assert tile(np.zeros((1, 2, 3, 4, 4), np.float32)).shape == (4, 10, 3)  # RGB keeps its channels last
