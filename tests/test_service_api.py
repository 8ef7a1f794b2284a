"""Every endpoint and every rejection, against a real `disentangle-serve` on loopback.

The model folder holds two copies of the smoke artifact (one given a factor calibration) next to four
broken ones: a sha256 mismatch, a missing file, an invalid manifest and a duplicate name.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageSequence
from service_harness import add_calibration, copy_artifact, metric, serve

from service.client import Client, ServiceError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_BODY = 1 << 20
MAX_SIDE = 256
MAX_ITEMS = 64
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def model_dir(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("service-api") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    copy_artifact(smoke_artifact, root, "smoke-calibrated", add_calibration)
    bad_sha = copy_artifact(smoke_artifact, root, "bad-sha")
    with (bad_sha / "decoder.onnx").open("ab") as f:
        f.write(b"\0")
    (copy_artifact(smoke_artifact, root, "no-encoder") / "encoder.onnx").unlink()
    copy_artifact(smoke_artifact, root, "bad-manifest", lambda m: m.update(latent_dim=0))
    copy_artifact(smoke_artifact, root, "zz-duplicate", lambda m: m.update(name="smoke"))
    return root


@pytest.fixture(scope="module")
def url(model_dir: Path) -> Iterator[str]:
    with serve(model_dir, max_body_bytes=MAX_BODY, max_image_side=MAX_SIDE, max_items=MAX_ITEMS) as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[Client]:
    with Client(url) as c:
        yield c


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as c:
        yield c


def ellipse_png(size: tuple[int, int] = (64, 64), mode: str = "L", fmt: str = "PNG") -> bytes:
    """A white ellipse on black, like a dSprites image."""
    picture = Image.new(mode, size)
    w, h = size
    ImageDraw.Draw(picture).ellipse((w * 0.3, h * 0.35, w * 0.7, h * 0.65), fill="white")
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def rejected(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    """Assert a rejection with the documented body whose message contains every fragment."""
    assert response.status_code == status, response.text
    body = response.json()
    for fragment in fragments:
        assert fragment in body["detail"], (fragment, body)
    return body


ZERO = [0.0] * 10


# --- health, readiness, models, docs --------------------------------------------------------------------


def test_health_and_readiness_with_broken_artifacts_beside_good_ones(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["models"] == ["smoke", "smoke-calibrated"]


def test_models_lists_the_good_and_says_why_each_broken_one_was_skipped(client: Client) -> None:
    listing = client.models()
    assert listing["default"] == "smoke"
    assert [m["name"] for m in listing["models"]] == ["smoke", "smoke-calibrated"]
    reasons = {b["folder"]: b["error"] for b in listing["broken"]}
    assert set(reasons) == {"bad-sha", "no-encoder", "bad-manifest", "zz-duplicate"}
    assert "decoder.onnx has sha256" in reasons["bad-sha"]
    assert "encoder.onnx is missing" in reasons["no-encoder"]
    assert "manifest.json is invalid" in reasons["bad-manifest"] and "latent_dim" in reasons["bad-manifest"]
    assert "already serves a model named 'smoke'" in reasons["zz-duplicate"]


def test_one_model_shows_its_manifest(client: Client, smoke_artifact: Path) -> None:
    manifest = json.loads((smoke_artifact / "manifest.json").read_text())
    info = client.model("smoke")
    assert info["latent_dim"] == 10 and info["image_shape"] == [1, 64, 64]
    assert info["objective"] == manifest["objective"] and info["dataset"]["name"] == "dsprites"
    assert info["latent_stats"] == manifest["latent_stats"]
    assert info["active_dims"] == [s["index"] for s in sorted(manifest["latent_stats"], key=lambda s: -s["kl"])
                                   if s["active"]]  # fmt: skip
    assert info["calibration"] is None and info["metrics"] == manifest["metrics"]
    assert client.model("smoke-calibrated")["calibration"]["factors"][0]["name"] == "shape"


def test_unknown_model_is_a_404_listing_the_known_ones(http: httpx.Client, client: Client) -> None:
    rejected(http.get("/models/nope"), 404, "model: expected one of ['smoke', 'smoke-calibrated']", "'nope'")
    with pytest.raises(ServiceError) as caught:
        client.decode([ZERO], model="bad-sha")
    assert caught.value.status == 404 and "'bad-sha'" in caught.value.message


def test_docs_openapi_and_home(http: httpx.Client) -> None:
    assert "swagger" in http.get("/docs").text.lower()
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/encode", "/decode", "/traverse", "/synthesize", "/models", "/models/{name}"} <= set(paths)
    decode_body = paths["/decode"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/octet-stream"} <= set(decode_body)
    assert "multipart/form-data" in paths["/encode"]["post"]["requestBody"]["content"]
    home = http.get("/", follow_redirects=False)
    assert home.status_code in (200, 307)


def test_request_ids_are_echoed_or_made(http: httpx.Client) -> None:
    assert http.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = http.get("/healthz").headers["x-request-id"]
    assert len(made) == 16 and made != http.get("/healthz").headers["x-request-id"]


# --- decode ---------------------------------------------------------------------------------------------


def test_decode_answers_in_every_format_with_the_same_pixels(http: httpx.Client, client: Client) -> None:
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(3, 10)).astype(np.float32)
    arrays = client.decode_arrays(latents)  # float32 in, float32 out
    assert arrays.shape == (3, 1, 64, 64) and arrays.dtype == np.float32
    assert 0.0 <= arrays.min() and arrays.max() <= 1.0

    as_json = http.post("/decode", json={"latents": latents.tolist(), "format": "array"}).json()
    np.testing.assert_allclose(np.asarray(as_json["images"], dtype=np.float32), arrays, atol=1e-5)

    pictures = client.decode(latents)  # PNGs, as PIL images
    assert [(p.size, p.mode) for p in pictures] == [((64, 64), "L")] * 3
    expected = np.rint(arrays[:, 0] * 255)
    assert np.abs(np.stack([np.asarray(p, dtype=np.float32) for p in pictures]) - expected).max() <= 1

    raw = http.post("/decode", json={"latents": [latents[0].tolist()]}, headers={"Accept": "image/png"})
    assert raw.headers["content-type"] == "image/png" and raw.content.startswith(PNG_SIGNATURE)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(raw.content))), np.asarray(pictures[0]))


def test_decode_rejects_bad_latents_naming_field_expected_and_received(http: httpx.Client) -> None:
    body = rejected(http.post("/decode", json={"latents": [ZERO, [0.0] * 3]}), 422, "latents[1]", "10 values")
    assert body["field"] == "latents[1]" and body["received"] == "3"
    nan = b'{"latents": [[0,0,0,0,0,0,0,0,0,NaN]]}'
    rejected(http.post("/decode", content=nan, headers=JSON), 422, "latents[0][9]", "nan")
    rejected(http.post("/decode", json={"latents": [[0.0] * 9 + [1e6]]}), 422, "finite value in [-20.0, 20.0]")
    rejected(http.post("/decode", json={"latents": []}), 422, "latents", "at least 1 item")
    rejected(http.post("/decode", json={"latents": [ZERO], "formt": "png"}), 422, "formt", "Extra inputs")
    rejected(http.post("/decode", json={"latents": [ZERO], "format": "tiff"}), 422, "format", "'png' or 'array'")
    rejected(http.post("/decode", content=b'{"latents": [[0', headers=JSON), 422, "body", "Invalid JSON")
    rejected(http.post("/decode", json={"latents": [ZERO], "model": "nope"}), 404, "one of ['smoke'")
    too_many = {"latents": [ZERO] * (MAX_ITEMS + 1)}
    rejected(http.post("/decode", json=too_many), 413, f"at most {MAX_ITEMS} items", f"{MAX_ITEMS + 1}")
    rejected(http.post("/decode", content=b"{}", headers={"Content-Type": "image/png"}), 415, "Content-Type")
    two = {"latents": [ZERO, ZERO]}
    rejected(http.post("/decode", json=two, headers={"Accept": "image/png"}), 406, "exactly one latent", "2")


def test_decode_binary_body_checks_its_shape(http: httpx.Client) -> None:
    latents = np.zeros((2, 10), dtype="<f4").tobytes()
    binary = {"Content-Type": "application/octet-stream"}
    rejected(http.post("/decode", content=latents, headers=binary), 422, "X-Shape", "none")
    rejected(http.post("/decode", content=latents, headers=binary | {"X-Shape": "2,9"}), 422, "(B, 10)")
    rejected(http.post("/decode", content=latents[:-4], headers=binary | {"X-Shape": "2,10"}), 422, "76 bytes")
    rejected(http.post("/decode", content=latents, headers=binary | {"X-Shape": "two"}), 422, "'64,10'")
    ok = http.post("/decode?shape=2,10", content=latents, headers=binary | {"Accept": "application/octet-stream"})
    assert ok.headers["x-shape"] == "2,1,64,64" and len(ok.content) == 2 * 64 * 64 * 4


def test_bodies_over_the_limit_are_a_413_and_the_service_carries_on(http: httpx.Client, client: Client) -> None:
    big = b" " * (MAX_BODY + 1)
    rejected(http.post("/decode", content=big), 413, f"at most {MAX_BODY} bytes")

    def stream() -> Iterator[bytes]:  # no Content-Length: the limit must hold on the streamed bytes too
        yield from (b" " * (1 << 16) for _ in range(MAX_BODY // (1 << 16) + 2))

    rejected(http.post("/decode", content=stream(), headers=JSON), 413, f"at most {MAX_BODY} bytes")
    assert client.ready() and len(client.decode([ZERO])) == 1


# --- encode ---------------------------------------------------------------------------------------------


def test_encode_reads_base64_arrays_and_uploads_alike(http: httpx.Client, client: Client) -> None:
    png = ellipse_png()
    pixels = (np.asarray(Image.open(io.BytesIO(png)), dtype=np.float32) / 255)[None]
    mu, logvar = client.encode([png, pixels])
    assert mu.shape == logvar.shape == (2, 10)
    np.testing.assert_allclose(mu[0], mu[1], atol=1e-5)

    files = [("images", ("a.png", png, "image/png")), ("images", ("b.png", png, "image/png"))]
    uploaded = http.post("/encode", files=files, data={"model": "smoke"})
    assert uploaded.status_code == 200, uploaded.text
    np.testing.assert_allclose(np.asarray(uploaded.json()["mu"]), mu[[0, 0]], atol=1e-5)

    data_url = "data:image/png;base64," + b64(png)
    as_data_url = http.post("/encode", json={"images": [data_url]}).json()
    np.testing.assert_allclose(np.asarray(as_data_url["mu"]), mu[:1], atol=1e-5)


def test_encode_converts_channels_and_formats_and_resizes_only_when_asked(http: httpx.Client) -> None:
    gray = np.asarray(http.post("/encode", json={"images": [b64(ellipse_png())]}).json()["mu"])
    rgb = http.post("/encode", json={"images": [b64(ellipse_png(mode="RGB"))]}).json()["mu"]
    np.testing.assert_allclose(np.asarray(rgb), gray, atol=1e-5)
    jpeg = http.post("/encode", json={"images": [b64(ellipse_png(fmt="JPEG"))]})
    assert jpeg.status_code == 200 and np.abs(np.asarray(jpeg.json()["mu"]) - gray).max() < 0.5

    large = {"images": [b64(ellipse_png((128, 96)))]}
    rejected(http.post("/encode", json=large), 422, "images[0]: expected 64x64 pixels, received 128x96", "resize")
    resized = http.post("/encode", json=large | {"resize": True})
    assert resized.status_code == 200 and len(resized.json()["mu"][0]) == 10


def test_encode_samples_are_reproducible_with_a_seed(client: Client) -> None:
    png = ellipse_png()
    mu, logvar = client.encode([png])
    first, again, other = (client.sample([png], seed=s) for s in (7, 7, 8))
    assert np.array_equal(first, again) and not np.allclose(first, other)
    assert first.shape == (1, 10) and not np.allclose(first, mu)
    # The samples come from N(mu, exp(logvar)): far outside it would mean the wrong formula.
    assert (np.abs(first - mu) < 6 * np.exp(0.5 * logvar) + 1e-3).all()


def test_encode_rejects_bad_images(http: httpx.Client) -> None:
    def post(image: Any, **extra: Any) -> httpx.Response:
        return http.post("/encode", json={"images": [image], **extra})

    rejected(post("not base64!"), 422, "images[0]", "base64")
    rejected(post(b64(b"hello, not an image")), 422, "images[0]: expected a PNG or JPEG image", "19 bytes")
    rejected(post(b64(ellipse_png(fmt="GIF"))), 422, "received a GIF image")
    rejected(post([[2.0] * 64] * 64), 422, "images[0]", "values in [2.0, 2.0]")
    rejected(post([[0.5] * 64, [0.5] * 3]), 422, "ragged")
    rejected(post([[[0.5] * 3] * 64] * 64), 422, "shape (64, 64, 3)", "channels come first")
    rejected(post(b64(ellipse_png((MAX_SIDE + 1, 64))), resize=True), 413, f"at most {MAX_SIDE} pixels")
    rejected(post(b64(ellipse_png()), seed=-1), 422, "seed")
    rejected(http.post("/encode", json={"images": []}), 422, "images", "at least 1 item")
    rejected(http.post("/encode", files=[("other", ("a.png", ellipse_png(), "image/png"))]), 422, "other")
    no_images = http.post("/encode", files=[("model", (None, "smoke"))])
    rejected(no_images, 422, "images: expected at least one image, received none")


# --- traverse -------------------------------------------------------------------------------------------


def test_traverse_grid_is_dims_by_steps_and_matches_decode(http: httpx.Client, client: Client) -> None:
    active = client.model("smoke")["active_dims"] or list(range(10))
    grid = http.post("/traverse", json={"steps": 5})
    assert grid.status_code == 200 and grid.headers["content-type"] == "image/png"
    assert grid.headers["x-traverse-dims"] == ",".join(map(str, active))
    picture = Image.open(io.BytesIO(grid.content))
    assert picture.size == (5 * 66 - 2, len(active) * 66 - 2)

    base = np.linspace(-1, 1, 10).astype(np.float32)
    frames = http.post("/traverse", json={"latent": base.tolist(), "dims": [3], "range": [-2, 2], "steps": 3,
                                          "format": "frames"}).json()  # fmt: skip
    assert frames["dims"] == [3] and frames["values"] == [[-2.0, 0.0, 2.0]]
    np.testing.assert_allclose(frames["base"], base, atol=1e-6)
    expected = np.repeat(base[None], 3, axis=0)
    expected[:, 3] = [-2.0, 0.0, 2.0]
    decoded = client.decode_arrays(expected)[:, 0]
    for step, text in enumerate(frames["frames"][0]):
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(text))), dtype=np.float32)
        assert np.abs(pixels - np.rint(decoded[step] * 255)).max() <= 1


def test_traverse_walks_by_default_the_ranges_models_answers(http: httpx.Client, client: Client) -> None:
    """One rule for a dim's range (contract/ranges.py): /models shows it, /traverse walks it, and the
    page's sliders span it (they read it from /models)."""
    info = client.model("smoke")
    assert len(info["ranges"]) == info["latent_dim"] == 10
    for stat, (low, high) in zip(info["latent_stats"], info["ranges"], strict=True):
        assert low == pytest.approx(max(min(-3.0, stat["mean"] - 3 * stat["std"]), -20.0))
        assert high == pytest.approx(min(max(3.0, stat["mean"] + 3 * stat["std"]), 20.0))
    frames = http.post("/traverse", json={"dims": [0, 1], "steps": 3, "format": "frames"})
    walked = [[float(v) for v in r.split(":")] for r in frames.headers["x-traverse-ranges"].split(",")]
    np.testing.assert_allclose(walked, info["ranges"][:2], rtol=1e-3)  # the header shows 4 digits
    for values, (low, high) in zip(frames.json()["values"], info["ranges"][:2], strict=True):
        assert values == pytest.approx([low, (low + high) / 2, high], rel=1e-6)


def test_traverse_from_an_image_and_as_a_gif(http: httpx.Client, client: Client) -> None:
    png = ellipse_png()
    mu, _ = client.encode([png])
    frames = http.post("/traverse", json={"image": b64(png), "dims": [0], "steps": 2, "format": "frames"}).json()
    np.testing.assert_allclose(frames["base"], mu[0], atol=1e-5)
    animation = Image.open(io.BytesIO(client.traverse_gif(dims=[0, 1], steps=4)))
    assert (
        animation.format == "GIF"
        and len(list(ImageSequence.Iterator(animation))) == 6
        and animation.size == (2 * 66 - 2, 64)
    )


def test_traverse_rejects_bad_requests(http: httpx.Client) -> None:
    rejected(http.post("/traverse", json={"steps": 33}), 422, "steps: expected at most 32", "33")
    rejected(http.post("/traverse", json={"steps": 1}), 422, "steps")
    rejected(http.post("/traverse", json={"dims": [0, 10]}), 422, "dims[1]: expected a dimension in [0, 10)", "10")
    rejected(http.post("/traverse", json={"dims": [1, 1]}), 422, "distinct")
    one = {"dims": [0]}  # a small traversal, so that only the field under test is wrong
    rejected(http.post("/traverse", json=one | {"range": [2, -2]}), 422, "range", "low < high")
    both = one | {"latent": ZERO, "image": b64(ellipse_png())}
    rejected(http.post("/traverse", json=both), 422, "at most one base")
    rejected(http.post("/traverse", json=one | {"latent": [0.0] * 4}), 422, "latent[0]: expected 10 values")
    rejected(http.post("/traverse", json={"dims": list(range(10)), "steps": 7}), 413, "dims x steps")


# --- synthesize -----------------------------------------------------------------------------------------


def test_synthesize_decodes_the_calibrated_latent(http: httpx.Client, client: Client, model_dir: Path) -> None:
    calibration = json.loads((model_dir / "smoke-calibrated" / "manifest.json").read_text())["calibration"]
    shape = calibration["factors"][0]
    picture, latent = client.synthesize({"shape": shape["values"][2]}, model="smoke-calibrated")
    assert latent.shape == (10,) and latent[shape["dims"][0]] == pytest.approx(shape["codes"][2][0], abs=1e-5)
    decoded = client.decode_arrays(latent[None], model="smoke-calibrated")[0, 0]
    assert np.abs(np.asarray(picture, dtype=np.float32) - np.rint(decoded * 255)).max() <= 1

    raw = http.post(
        "/synthesize",
        json={"model": "smoke-calibrated", "factors": {"shape": shape["values"][2]}},
        headers={"Accept": "image/png"},
    )
    assert raw.content.startswith(PNG_SIGNATURE)
    np.testing.assert_allclose([float(v) for v in raw.headers["x-latent"].split(",")], latent, atol=1e-4)


def test_synthesize_rejects_unknown_factors_values_and_uncalibrated_models(http: httpx.Client) -> None:
    def post(factors: dict[str, Any], model: str = "smoke-calibrated") -> httpx.Response:
        return http.post("/synthesize", json={"model": model, "factors": factors})

    body = rejected(post({"colour": "red"}), 422, "factors.colour: expected a factor name, one of 'shape', 'scale'")
    assert body["field"] == "factors.colour" and body["received"] == "'colour'"
    rejected(post({"shape": "star"}), 422, "factors.shape: expected one of 'square', 'ellipse', 'heart'", "'star'")
    rejected(post({"scale": 99.0}), 422, "factors.scale: expected a number in [0.5, 1]", "99.0")
    rejected(post({"scale": "big"}), 422, "factors.scale", "'big'")
    rejected(post({"shape": "square"}, model="smoke"), 422, "factor calibration", "['smoke-calibrated']")


def test_garbage_gets_a_4xx_never_a_5xx(http: httpx.Client) -> None:
    bodies = [b"", b"null", b"[]", b"\xff\xfe", b'{"a":' * 5000, b'{"latents": "x"}', b'{"images": [null]}',
              b'{"images": [{"a": 1}]}', b'{"factors": []}', b'{"latent": [[1]]}', b'{"dims": ["a"]}',
              b'{"steps": 1e308}', b'{"range": [1]}', b'{"latents": [[1e400, 0, 0, 0, 0, 0, 0, 0, 0, 0]]}']  # fmt: skip
    content_types = ["application/json", "application/octet-stream", "multipart/form-data; boundary=x", "image/png"]
    for path in ("/decode", "/encode", "/traverse", "/synthesize"):
        for body in bodies:
            assert 400 <= http.post(path, content=body).status_code < 500, (path, body[:40])
        for kind in content_types:
            response = http.post(path, content=b"garbage", headers={"Content-Type": kind})
            assert 400 <= response.status_code < 500, (path, kind, response.text)


# --- metrics, and nothing lost ------------------------------------------------------------------------


def test_metrics_count_requests_latency_batches_and_queue(http: httpx.Client, client: Client) -> None:
    client.decode([ZERO, ZERO])
    text = http.get("/metrics").text
    assert metric(text, "disentangle_requests_total", endpoint="/decode", model="smoke", status="200") >= 1
    assert metric(text, "disentangle_requests_total", endpoint="/decode", status="422") >= 1
    assert metric(text, "disentangle_request_seconds_count", endpoint="/decode", model="smoke") >= 1
    assert metric(text, "disentangle_batch_size_count", model="smoke", network="decoder") >= 1
    assert metric(text, "disentangle_batch_size_sum", model="smoke", network="decoder") >= 2
    assert metric(text, "disentangle_inference_seconds_count", model="smoke", network="encoder") >= 1
    assert metric(text, "disentangle_queue_depth", model="smoke", network="decoder") == 0
    assert metric(text, "disentangle_models_loaded") == 2 and metric(text, "disentangle_artifacts_broken") == 4
    # Every rejection above was a 4xx; the service never answered a request with a 500.
    assert 'status="500"' not in text
