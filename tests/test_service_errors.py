"""The error contract, against a real server: one JSON shape for every 4xx and 5xx, strict request types.

Every error body is ``{detail, field, expected, received}``; a 500 adds the request id and nothing of the
failure itself, which goes to the server's log with its traceback under that id.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from service_harness import add_calibration, copy_artifact, serve, server_log
from service_with_bugs import SECRET

MAX_ITEMS = 4
ZERO = [0.0] * 10
SHAPE = {"detail", "field", "expected", "received"}


@pytest.fixture(scope="module")
def model_dir(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("service-errors") / "models"
    copy_artifact(smoke_artifact, root, "smoke", add_calibration)
    card = root / "smoke" / "card"
    card.mkdir(exist_ok=True)
    for name in ("kept.png", "deleted.png"):
        Image.new("L", (8, 8), 255).save(card / name)
    return root


@pytest.fixture(scope="module")
def url(model_dir: Path) -> Iterator[str]:
    with serve(model_dir, factory="service_with_bugs:create_app", max_items=MAX_ITEMS) as base:
        yield base


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


def error(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    """Assert a ``status`` answered in the error shape, its message holding every fragment."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    assert SHAPE <= set(body), body
    for fragment in fragments:
        assert fragment in body["detail"], (fragment, body)
    return body


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size).save(buffer, format="PNG")
    return buffer.getvalue()


def test_unknown_paths_and_methods_answer_in_the_error_shape(http: httpx.Client) -> None:
    body = error(http.get("/nowhere"), 404, "path: expected a path this service serves", "'/nowhere'")
    assert body["field"] == "path" and body["received"] == "'/nowhere'"
    error(http.get("/static/nothing.js"), 404, "path")
    wrong = http.get("/decode")
    body = error(wrong, 405, "method: expected one of POST", "GET")
    assert body["field"] == "method" and wrong.headers["allow"] == "POST"


def test_too_many_files_in_a_multipart_is_a_413(http: httpx.Client) -> None:
    files = [("images", (f"{i}.png", png(), "image/png")) for i in range(MAX_ITEMS + 1)]
    body = error(http.post("/encode", files=files), 413, f"images: expected at most {MAX_ITEMS} images")
    assert body["field"] == "images"
    fields = {"images": [str(i) for i in range(MAX_ITEMS + 9)]}
    error(http.post("/encode", data=fields, files=[("x", ("a.png", png(), "image/png"))]), 413, "images")
    ok = http.post("/encode", files=[("images", ("a.png", png(), "image/png"))] * MAX_ITEMS)
    assert ok.status_code == 200 and len(ok.json()["mu"]) == MAX_ITEMS, ok.text


def test_a_malformed_multipart_is_a_400_in_the_error_shape(http: httpx.Client) -> None:
    no_boundary = {"Content-Type": "multipart/form-data"}
    body = error(http.post("/encode", content=b"--x\r\n", headers=no_boundary), 400, "multipart/form-data")
    assert body["field"] == "body" and "boundary" in body["received"]
    nameless = b'--x\r\nContent-Disposition: form-data; filename="a.png"\r\n\r\nabc\r\n--x--\r\n'
    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    error(http.post("/encode", content=nameless, headers=headers), 400, "well-formed multipart")


def test_a_500_carries_the_request_id_and_no_internals_which_go_to_the_log(
    http: httpx.Client, url: str, model_dir: Path
) -> None:
    for path in ("/bug/crash", "/bug/validation"):
        response = http.get(path, headers={"X-Request-ID": f"trace{path.replace('/', '-')}"})
        body = error(response, 500, "internal error")
        rid = response.headers["x-request-id"]
        assert body["request_id"] == rid and rid in body["detail"]
        assert SECRET not in response.text and "Traceback" not in response.text
        assert "ValidationError" not in response.text and "RuntimeError" not in response.text
    logged = [json.loads(line) for line in server_log(model_dir, url).read_text().splitlines() if "{" in line]
    entries = {e.get("request_id"): e for e in logged if e.get("logger") == "disentangle.error"}
    assert "RuntimeError: " + SECRET in entries["trace-bug-crash"]["error"]
    assert "Traceback" in entries["trace-bug-validation"]["error"]
    assert "ValidationError" in entries["trace-bug-validation"]["error"]
    # The service carries on.
    assert http.post("/decode", json={"latents": [ZERO]}).status_code == 200


def test_a_card_picture_deleted_while_serving_is_a_404(http: httpx.Client, model_dir: Path) -> None:
    assert {"kept.png", "deleted.png"} <= set(http.get("/models/smoke").json()["card"])
    (model_dir / "smoke" / "card" / "deleted.png").unlink()
    body = error(http.get("/models/smoke/card/deleted.png"), 404, "file:", "deleted since start-up")
    assert body["field"] == "file"
    kept = http.get("/models/smoke/card/kept.png")
    assert kept.status_code == 200 and kept.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(kept.content)).size == (8, 8)


def test_booleans_are_not_numbers_and_numbers_are_not_booleans(http: httpx.Client) -> None:
    body = error(http.post("/synthesize", json={"factors": {"posX": True}}), 422, "factors.posX: expected")
    assert body["field"] == "factors.posX" and "number" in body["expected"] and body["received"] == "true (a boolean)"
    body = error(http.post("/decode", json={"latents": [[*ZERO[:9], True]]}), 422, "latents[0][9]")
    assert "number" in body["expected"] and "boolean" in body["received"]
    error(http.post("/traverse", json={"latent": [True, *ZERO[1:]]}), 422, "latent[0]", "boolean")
    body = error(http.post("/encode", json={"images": [""], "resize": 0.0}), 422, "resize: expected a valid boolean")
    assert body["received"] == "0.0"
    error(http.post("/encode", json={"images": [""], "sample": 1}), 422, "sample: expected a valid boolean")
    error(http.post("/traverse", json={"steps": 7.0}), 422, "steps: expected a valid integer")
    # Whole numbers are numbers, and multipart form fields, which are text, still read as booleans.
    assert http.post("/decode", json={"latents": [[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]]}).status_code == 200
    upload = http.post("/encode", files=[("images", ("a.png", png((32, 32)), "image/png"))], data={"resize": "true"})
    assert upload.status_code == 200, upload.text


def test_json_bodies_must_be_labelled_application_json(http: httpx.Client) -> None:
    # text/plain, forms and unlabelled bodies are what a page on another site may POST without a preflight.
    body = json.dumps({"latents": [ZERO]}).encode()
    for kind in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": kind} if kind else {}
        for path in ("/decode", "/encode", "/traverse", "/synthesize", "/edit"):
            answer = error(
                http.post(path, content=body, headers=headers), 415, "Content-Type: expected application/json"
            )
            assert answer["received"] == (repr(kind) if kind else "none")
    labelled = http.post("/decode", content=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert labelled.status_code == 200, labelled.text
