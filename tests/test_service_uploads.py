"""Uploads at the edge of the limits: empty and oversized arrays, the per-request pixel budget, many large
uploads at once, and the MPO JPEGs that phone cameras write."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw
from service_harness import copy_artifact, serve

MAX_SIDE = 512
BUDGET = MAX_SIDE * MAX_SIDE + 64 * 64  # one image at the largest side and one at the model's


@pytest.fixture(scope="module")
def url(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("service-uploads") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    with serve(root, max_image_side=MAX_SIDE, max_request_pixels=BUDGET) as base:
        yield base


def picture() -> Image.Image:
    image = Image.new("RGB", (64, 64))
    ImageDraw.Draw(image).ellipse((12, 20, 44, 40), fill="white")
    return image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def post(url: str, body: object) -> httpx.Response:
    return httpx.post(f"{url}/encode", json=body, timeout=120)


def assert_rejected(response: httpx.Response, status: int, field: str, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field, body
    for fragment in fragments:
        assert fragment in body["detail"], body


def test_empty_arrays_are_a_422_naming_the_image(url: str) -> None:
    assert_rejected(post(url, {"images": [[[]]]}), 422, "images[0]", "empty")
    assert_rejected(post(url, {"images": [[[[]]]]}), 422, "images[0]", "empty")
    png = base64.b64encode(encoded(picture(), "PNG")).decode()
    assert_rejected(post(url, {"images": [png, [[0.5, 0.5], []]]}), 422, "images[1]", "empty")
    assert_rejected(post(url, {"images": [[[0.5, 0.5], [0.5, "x"]]]}), 422, "images[0]", "other than numbers")


def test_arrays_over_the_side_or_the_request_budget_are_a_413(url: str) -> None:
    tall = np.zeros((MAX_SIDE + 1, 4)).tolist()
    assert_rejected(post(url, {"images": [tall], "resize": True}), 413, "images[0]", f"at most {MAX_SIDE} pixels")
    largest = np.full((MAX_SIDE, MAX_SIDE), 0.5).round(1).tolist()
    small = np.zeros((64, 64)).tolist()
    assert post(url, {"images": [largest, small], "resize": True}).status_code == 200
    over = post(url, {"images": [small, largest, small], "resize": True})
    assert_rejected(over, 413, "images[2]", f"at most {BUDGET} pixels in one request")


def test_concurrent_large_array_uploads_all_get_the_same_answer(url: str) -> None:
    values = np.random.default_rng(0).integers(0, 10, size=(3, MAX_SIDE, MAX_SIDE)) / 10
    body = json.dumps({"images": [values.tolist()], "resize": True}).encode()
    assert len(body) > 1 << 20  # large enough to go through the upload slots

    def send(_: int) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        return httpx.post(f"{url}/encode", content=body, headers=headers, timeout=120)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text[:200] for a in answers]
    mus = np.array([a.json()["mu"][0] for a in answers])
    np.testing.assert_allclose(mus, mus[[0] * 6], atol=1e-6)


def test_phone_jpegs_in_mpo_format_are_read_like_jpegs(url: str) -> None:
    image = picture()
    mpo = encoded(image, "MPO", save_all=True, append_images=[image.rotate(90)])
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    jpeg = encoded(image, "JPEG")
    uploaded = httpx.post(f"{url}/encode", files=[("images", ("phone.jpg", mpo, "image/jpeg"))], timeout=30)
    assert uploaded.status_code == 200, uploaded.text
    as_json = post(url, {"images": [base64.b64encode(mpo).decode()]})
    assert as_json.status_code == 200, as_json.text
    reference = post(url, {"images": [base64.b64encode(jpeg).decode()]}).json()["mu"]
    # The MPO's first picture is the JPEG itself (same encoder, same quality): the same latent.
    np.testing.assert_allclose(uploaded.json()["mu"], reference, atol=1e-5)
    np.testing.assert_allclose(as_json.json()["mu"], reference, atol=1e-5)
