"""One picture, one model input: the folder dataset training reads and the service's /encode prepare a file
by the same rule (contract/images.py), so a model sees in service what it saw in training.

Real PNG and JPEG files, non-square, one stored sideways with an EXIF orientation, one with transparency;
first the two readers' tensors compared bit for bit, then a real `disentangle-serve`'s /encode against the
artifact's encoder run on the folder dataset's images.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw
from service_harness import copy_artifact, serve

from contract.images import ORIENTATION_TAG
from service.imaging import ImageReader
from training.data.folder import ImageFolder
from training.evaluate.onnx_model import OnnxModel


def _scene(width: int, height: int, seed: int) -> Image.Image:
    """A picture with detail at every scale: a gradient, shapes and noise, so any change of crop, filter,
    orientation or channel weights changes the pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1) * 200
    pixels = (base + rng.integers(0, 55, size=(height, width, 3))).astype(np.uint8)
    picture = Image.fromarray(pixels)
    draw = ImageDraw.Draw(picture)
    draw.ellipse((width * 0.3, height * 0.2, width * 0.6, height * 0.7), fill=(250, 240, 30))
    draw.rectangle((width * 0.1, height * 0.6, width * 0.3, height * 0.9), fill=(20, 30, 200))
    return picture


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pictures")
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6  # shown turned a quarter clockwise, as a phone stores a portrait photo
    _scene(180, 120, 0).save(folder / "a_sideways.jpg", quality=90, exif=exif)
    rgba = _scene(90, 150, 1).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "b_transparent.png")
    _scene(64, 64, 2).convert("L").save(folder / "c_grey.png")
    _scene(301, 77, 3).save(folder / "d_wide.jpeg", quality=75)
    return folder


@pytest.mark.parametrize("shape", [(1, 64, 64), (3, 64, 64), (3, 32, 32)])
def test_the_folder_dataset_and_the_encode_reader_give_the_same_tensor(
    pictures: Path, shape: tuple[int, int, int]
) -> None:
    channels, size, _ = shape
    dataset = ImageFolder(pictures, channels=channels, size=size)
    assert [p.name for p in dataset.paths] == ["a_sideways.jpg", "b_transparent.png", "c_grey.png", "d_wide.jpeg"]
    trained_on = dataset.images(np.arange(len(dataset)))  # (4, C, size, size)
    for i, path in enumerate(dataset.paths):
        served = ImageReader(shape, max_side=1024, resize=True).read(path.read_bytes(), "images[0]")
        assert served.dtype == np.float32 and served.shape == shape
        np.testing.assert_array_equal(served, trained_on[i], err_msg=path.name)


@pytest.fixture(scope="module")
def url(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("same-input") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    with serve(root) as base:
        yield base


def test_encode_answers_what_the_encoder_gives_for_the_folder_datasets_images(
    pictures: Path, url: str, smoke_artifact: Path
) -> None:
    model = OnnxModel(smoke_artifact, threads=1)
    channels, size, _ = model.manifest.image_shape
    dataset = ImageFolder(pictures, channels=channels, size=size)
    expected, _ = model.encode(dataset.images(np.arange(len(dataset))))  # (4, c)
    files = [("images", (p.name, p.read_bytes(), "application/octet-stream")) for p in dataset.paths]
    with httpx.Client(base_url=url, timeout=60) as http:
        response = http.post("/encode", files=files, data={"resize": "true"})
    assert response.status_code == 200, response.text
    served = np.asarray(response.json()["mu"], dtype=np.float32)
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)
    # The tolerance is far below what another preparation moves: the wide picture squeezed, not cropped.
    wide = Image.open(io.BytesIO(dataset.paths[3].read_bytes())).convert("L").resize((size, size))
    squeezed, _ = model.encode((np.asarray(wide, dtype=np.float32) / 255)[None, None])
    assert np.abs(squeezed[0] - expected[3]).max() > 1e-3
