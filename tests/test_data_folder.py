"""Image folders: recursive PNG/JPEG discovery, channel and size conversion, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.folder import ImageFolder

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def solid(path: Path, colour: tuple[int, ...], size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


@pytest.fixture()
def nested(tmp_path: Path) -> Path:
    """a.png (red), sub/b.JPG (green), sub/deeper/c.jpeg (blue), plus files that are not images."""
    solid(tmp_path / "a.png", RED)
    solid(tmp_path / "sub" / "b.JPG", GREEN)
    solid(tmp_path / "sub" / "deeper" / "c.jpeg", BLUE)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub" / "d.gif").write_bytes(b"GIF89a")
    return tmp_path


def test_finds_png_and_jpeg_recursively_in_path_order(nested: Path) -> None:
    folder = ImageFolder(nested)
    found = [p.relative_to(nested).as_posix() for p in folder.paths]
    assert found == ["a.png", "sub/b.JPG", "sub/deeper/c.jpeg"]
    assert len(folder) == 3 and folder.image_shape == (3, 64, 64) and folder.factors == []
    batch = folder.images(np.array([0, 1, 2]))  # (3, 3, 64, 64)
    assert batch.dtype == np.float32 and batch.min() >= 0.0 and batch.max() <= 1.0
    mean_colour = batch.mean(axis=(2, 3))  # (3, 3): one RGB triple per image
    np.testing.assert_allclose(mean_colour, np.eye(3), atol=0.02)  # JPEG is lossy
    np.testing.assert_array_equal(folder.images(np.array([2, 0])), batch[[2, 0]])


def test_converts_to_grey_and_to_rgb(nested: Path, tmp_path: Path) -> None:
    grey = ImageFolder(nested, channels=1, size=32)
    assert grey.image_shape == (1, 32, 32)
    red = grey.images(np.array([0]))[0, 0]
    np.testing.assert_allclose(red, 76 / 255)  # ITU-R 601 luma of pure red: 0.299 * 255
    solid(tmp_path / "grey" / "g.png", (200,), mode="L")
    solid(tmp_path / "grey" / "rgba.png", (0, 0, 255, 0), mode="RGBA")  # transparent blue: alpha is dropped
    rgb = ImageFolder(tmp_path / "grey", channels=3).images(np.array([0, 1]))
    np.testing.assert_allclose(rgb[0], 200 / 255)
    np.testing.assert_allclose(rgb[1].mean(axis=(1, 2)), [0, 0, 1])


def test_centre_crops_to_a_square_before_resizing(tmp_path: Path) -> None:
    wide = Image.new("RGB", (90, 30), RED)
    wide.paste(GREEN, (30, 0, 60, 30))  # red | green | blue thirds
    wide.paste(BLUE, (60, 0, 90, 30))
    wide.save(tmp_path / "wide.png")
    image = ImageFolder(tmp_path, size=16).images(np.array([0]))[0]  # (3, 16, 16)
    centre = image[:, 2:-2, 2:-2].mean(axis=(1, 2))  # squashed instead of cropped, it would be a third each
    np.testing.assert_allclose(centre, [0, 1, 0], atol=0.01)  # Lanczos rings a little


def test_records_its_params(nested: Path) -> None:
    info = ImageFolder(nested, channels=1, size=32).info()
    assert info.name == "folder" and info.size == 3 and info.factors == []
    assert info.params == {"root": str(nested), "channels": 1, "size": 32}


def test_empty_folders_and_unreadable_files_get_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"no images under .*empty: expected files ending in .png, .jpg"):
        ImageFolder(tmp_path / "empty")
    broken = tmp_path / "broken" / "nested" / "photo.jpg"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\xff\xd8\xff this is not really a JPEG")
    with pytest.raises(ValueError, match=rf"folder: cannot read {broken} as an image"):
        ImageFolder(tmp_path / "broken")
    with pytest.raises(FileNotFoundError, match="folder: root: expected a folder of PNG/JPEG images, got"):
        ImageFolder(tmp_path / "missing")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"channels": 2}, "channels: expected 1 or 3, got 2"),
        ({"channels": "3"}, "channels: expected 1 or 3, got '3'"),
        ({"size": 0}, "size: expected a positive integer .*, got 0"),
        ({"size": 64.0}, "size: expected a positive integer .*, got 64.0"),
    ],
)
def test_bad_params_name_the_field(nested: Path, params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageFolder(nested, **params)  # type: ignore[arg-type]
