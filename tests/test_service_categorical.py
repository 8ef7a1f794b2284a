"""Categorical latent parts through a real `disentangle-serve`: a JointVAE trained and exported in this session
(4 continuous dims and a 3-class ``shape`` part) served beside a shipped all-continuous model (schema 1)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from service_harness import REPO, copy_artifact, serve

from contract.manifest import read_manifest
from service.client import Client, ServiceError

JOINT = "smoke_joint"
OLD = "dsprites_vae"  # shipped before the layout existed
C, K = 4, 3  # continuous dims, classes of the shape part
GAP = 2  # contract.grid.GAP


@pytest.fixture(scope="module")
def url(joint_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("service-categorical") / "models"
    copy_artifact(joint_artifact, root, JOINT)
    copy_artifact(REPO / "models" / OLD, root, OLD)
    with serve(root, default_model=JOINT) as base:
        yield base


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[Client]:
    with Client(url, timeout=60) as c:
        yield c


def _png(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray((image[0] * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _pixels(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def _rejected(response: httpx.Response, field: str, expected: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field, body
    assert expected in body["expected"], body
    return body


def test_models_list_the_layout_and_old_artifacts_stay_all_continuous(http: httpx.Client) -> None:
    models = {m["name"]: m for m in http.get("/models").json()["models"]}
    normal = {"kind": "normal", "low": -1.0, "high": 1.0}  # a VAE's codes, and what a manifest without a prior means
    joint = {"continuous": C, "categorical": [{"name": "shape", "classes": K}], "noise": 0, "prior": normal}
    assert models[JOINT]["layout"] == joint
    assert models[JOINT]["latent_dim"] == C + K
    old = models[OLD]
    assert old["layout"] == {"continuous": old["latent_dim"], "categorical": [], "noise": 0, "prior": normal}


def test_encode_answers_probabilities_per_part_beside_mu_and_logvar(http: httpx.Client, client: Client) -> None:
    from training.data import get_dataset

    images = get_dataset("dsprites").images(np.array([0, 300_000, 700_000]))  # (3, 1, 64, 64)
    body = http.post("/encode", json={"images": [_png(i) for i in images]}).json()
    assert np.shape(body["mu"]) == np.shape(body["logvar"]) == (3, C)
    probabilities = np.asarray(body["probabilities"]["shape"])
    assert probabilities.shape == (3, K) and (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    from_client = client.probabilities([base64.b64decode(_png(i)) for i in images])
    np.testing.assert_allclose(from_client["shape"], probabilities, atol=1e-6)
    # a sample is one flat latent: a Gaussian draw, then the one-hot of a drawn class
    z = np.asarray(http.post("/encode", json={"images": [_png(images[0])], "sample": True, "seed": 1}).json()["z"])
    assert z.shape == (1, C + K) and sorted(z[0, C:].tolist()) == [0.0, 0.0, 1.0]
    # the all-continuous model answers as before, without probabilities
    old = http.post("/encode", json={"model": OLD, "images": [_png(images[0])]}).json()
    assert "probabilities" not in old and len(old["mu"][0]) == 10
    assert client.probabilities([base64.b64decode(_png(images[0]))], model=OLD) == {}


def test_decode_takes_a_class_index_or_probabilities_and_matches_the_flat_latent(
    http: httpx.Client, client: Client
) -> None:
    continuous = [0.5, -0.3, 0.0, 1.0]
    flat = http.post("/decode", json={"latents": [continuous + [0, 0, 1]]}).json()["images"]
    by_index = http.post("/decode", json={"latents": [continuous], "categorical": {"shape": [2]}}).json()["images"]
    by_probabilities = http.post(
        "/decode", json={"latents": [continuous], "categorical": {"shape": [[0.0, 0.0, 1.0]]}}
    ).json()["images"]
    np.testing.assert_array_equal(_pixels(by_index[0]), _pixels(flat[0]))
    np.testing.assert_array_equal(_pixels(by_probabilities[0]), _pixels(flat[0]))
    (picture,) = client.decode([continuous], categorical={"shape": [2]})
    np.testing.assert_array_equal(np.asarray(picture), _pixels(flat[0]))
    # a blend of classes is a valid input too
    mixed = http.post("/decode", json={"latents": [continuous], "categorical": {"shape": [[0.2, 0.3, 0.5]]}})
    assert mixed.status_code == 200


@pytest.mark.parametrize(
    ("payload", "field", "expected"),
    [
        ({"latents": [[0] * C], "categorical": {"shape": [3]}}, "categorical.shape[0]", "a class index in [0, 3)"),
        ({"latents": [[0] * C], "categorical": {"shape": [-1]}}, "categorical.shape[0]", "a class index in [0, 3)"),
        (
            {"latents": [[0] * C], "categorical": {"shape": [[0.5, -0.1, 0.6]]}},
            "categorical.shape[0][1]",
            "a finite probability >= 0",
        ),
        (
            {"latents": [[0] * C], "categorical": {"shape": [[0.5, 0.2, 0.2]]}},
            "categorical.shape[0]",
            "probabilities summing to 1",
        ),
        ({"latents": [[0] * C], "categorical": {"shape": [[0.5, 0.5]]}}, "categorical.shape[0]", "3 probabilities"),
        ({"latents": [[0] * C], "categorical": {"colour": [1]}}, "categorical.colour", "one of ['shape']"),
        ({"latents": [[0] * C], "categorical": {}}, "categorical", "a value for every categorical part"),
        ({"latents": [[0] * C, [0] * C], "categorical": {"shape": [1]}}, "categorical.shape", "one entry per latent"),
        ({"latents": [[0] * (C + K)], "categorical": {"shape": [1]}}, "latents[0]", "4 values"),
        ({"latents": [[0] * (C + K)]}, "latents[0][4:7]", "summing to 1"),
        ({"latents": [[0] * C + [1.5, -0.5, 0]]}, "latents[0][5]", "a probability >= 0"),
        ({"latents": [[0] * 10], "categorical": {"shape": [1]}, "model": OLD}, "categorical", "no categorical"),
    ],
)
def test_decode_rejects_bad_categorical_input_naming_the_field(
    http: httpx.Client, payload: dict[str, Any], field: str, expected: str
) -> None:
    _rejected(http.post("/decode", json=payload), field, expected)


def test_raw_float32_latents_are_checked_too(http: httpx.Client) -> None:
    bad = np.zeros((1, C + K), dtype="<f4")
    response = http.post(
        "/decode", content=bad.tobytes(), headers={"Content-Type": "application/octet-stream", "X-Shape": "1,7"}
    )
    _rejected(response, "latents[0][4:7]", "summing to 1")
    bad[0, C + 1] = 1
    good = http.post(
        "/decode", content=bad.tobytes(), headers={"Content-Type": "application/octet-stream", "X-Shape": "1,7"}
    )
    assert good.status_code == 200


def test_traverse_walks_a_part_through_its_classes(http: httpx.Client, client: Client) -> None:
    response = http.post("/traverse", json={"part": "shape"})
    assert response.status_code == 200 and response.headers["x-traverse-classes"] == str(K)
    grid = np.asarray(Image.open(io.BytesIO(response.content)))
    assert grid.shape[:2] == (64, K * 64 + (K - 1) * GAP)
    frames = http.post("/traverse", json={"part": "shape", "format": "frames", "latent": [0.1] * C + [1, 0, 0]})
    body = frames.json()
    assert body["part"] == "shape" and body["values"] == [[0, 1, 2]] and len(body["frames"][0]) == K
    # column k is the base decoded with class k
    for k in range(K):
        one_hot = [0.0] * K
        one_hot[k] = 1.0
        decoded = http.post("/decode", json={"latents": [[0.1] * C + one_hot]}).json()["images"][0]
        np.testing.assert_array_equal(_pixels(body["frames"][0][k]), _pixels(decoded))
    assert client.traverse(part="shape").size == (K * 64 + (K - 1) * GAP, 64)
    # the default traversal walks the continuous dims from a valid base
    assert http.post("/traverse", json={"steps": 3}).status_code == 200
    _rejected(http.post("/traverse", json={"part": "colour"}), "part", "one of ['shape']")
    _rejected(http.post("/traverse", json={"part": "shape", "dims": [0]}), "dims, range", "neither with `part`")
    _rejected(http.post("/traverse", json={"dims": [C + 1]}), "dims[0]", "a continuous or noise dimension")


def test_synthesize_puts_the_calibrated_class_of_a_named_value(http: httpx.Client, joint_artifact: Path) -> None:
    calibration = read_manifest(joint_artifact).calibration
    assert calibration is not None
    shape = next(f for f in calibration.factors if f.name == "shape")
    assert shape.part == "shape" and shape.classes is not None
    for value, k in zip(shape.values, shape.classes, strict=True):
        body = http.post("/synthesize", json={"factors": {"shape": value, "scale": 1.0}}).json()
        latent = np.asarray(body["latent"])
        assert latent[C:].tolist() == np.eye(K)[k].tolist(), value
        decoded = http.post("/decode", json={"latents": [body["latent"]]}).json()["images"][0]
        np.testing.assert_array_equal(_pixels(body["image"]), _pixels(decoded))
    with Client(str(http.base_url)) as client, pytest.raises(ServiceError, match="factors.shape"):
        client.synthesize({"shape": "star"})
