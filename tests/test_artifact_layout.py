"""The latent layout in the manifest: validation, the flat vector's order, and old manifests still loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from contract.manifest import (
    SCHEMA_VERSION,
    CategoricalPart,
    LatentLayout,
    Manifest,
    read_manifest,
    write_manifest,
)

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_layout_orders_continuous_then_categorical_then_noise() -> None:
    layout = LatentLayout(
        continuous=3,
        categorical=[CategoricalPart(name="digit", classes=10), CategoricalPart(name="style", classes=2)],
        noise=4,
    )
    assert layout.size == 3 + 10 + 2 + 4
    assert layout.classes == 12
    assert layout.part_slices() == {"digit": slice(3, 13), "style": slice(13, 15)}
    assert layout.noise_slice == slice(15, 19)
    continuous = np.arange(6, dtype=np.float32).reshape(2, 3)
    probabilities = np.zeros((2, 12), dtype=np.float32)
    probabilities[0, 7], probabilities[0, 10] = 1, 1
    probabilities[1, 2], probabilities[1, 11] = 1, 1
    flat = layout.flat(continuous, probabilities)
    assert flat.shape == (2, 19)
    np.testing.assert_array_equal(flat[:, :3], continuous)
    assert flat[0, 3 + 7] == 1 and flat[1, 3 + 2] == 1
    np.testing.assert_array_equal(flat[:, 15:], 0)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"continuous": 2, "categorical": [{"name": "digit", "classes": 1}]}, "greater than or equal to 2"),
        (
            {"continuous": 2, "categorical": [{"name": "a", "classes": 3}, {"name": "a", "classes": 4}]},
            "unique",
        ),
        ({"continuous": 0}, "at least one latent dim"),
        ({"continuous": 2, "categorical": [{"name": "two words", "classes": 3}]}, "pattern"),
        ({"continuous": -1}, "greater than or equal to 0"),
    ],
)
def test_layout_rejects_invalid(layout: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LatentLayout.model_validate(layout)


def test_layout_flat_checks_shapes() -> None:
    layout = LatentLayout(continuous=2, categorical=[CategoricalPart(name="shape", classes=3)])
    with pytest.raises(ValueError, match=r"probabilities must be \(B, 3\)"):
        layout.flat(np.zeros((1, 2)), None)
    with pytest.raises(ValueError, match=r"continuous codes must be \(B, 2\)"):
        layout.flat(np.zeros((1, 3)), np.zeros((1, 3)))


@pytest.mark.parametrize("folder", sorted(p.parent for p in MODELS.glob("*/manifest.json")), ids=lambda p: p.name)
def test_shipped_version_1_manifests_load_all_continuous(folder: Path) -> None:
    raw = json.loads((folder / "manifest.json").read_text())
    manifest = read_manifest(folder)
    if raw["schema_version"] == 1:
        assert "layout" not in raw
        assert manifest.layout == LatentLayout(continuous=raw["latent_dim"])
        assert manifest.layout.size == manifest.latent_dim
        assert len(manifest.latent_stats) == manifest.latent_dim


def _manifest_dict(**changes: object) -> dict:
    # An all-continuous model: the first by file-system order may be one with categorical parts (an InfoGAN).
    raw = json.loads((MODELS / "dsprites_beta_tcvae" / "manifest.json").read_text())
    raw.pop("layout", None)
    raw.update(changes)
    return raw


def test_version_2_manifest_with_categorical_layout() -> None:
    raw = _manifest_dict()
    d = raw["latent_dim"]
    raw.update(
        schema_version=SCHEMA_VERSION,
        latent_dim=d + 10,
        layout={"continuous": d, "categorical": [{"name": "digit", "classes": 10}]},
    )
    raw["calibration"] = None
    manifest = Manifest.model_validate(raw)
    assert manifest.layout.part_slices() == {"digit": slice(d, d + 10)}
    # round trip: what training writes is what the service reads
    assert Manifest.model_validate_json(manifest.model_dump_json()) == manifest


def test_manifest_rejects_layout_that_disagrees_with_latent_dim_or_stats() -> None:
    raw = _manifest_dict()
    d = raw["latent_dim"]
    raw["calibration"] = None
    with pytest.raises(ValidationError, match="layout holds"):
        Manifest.model_validate({**raw, "layout": {"continuous": d, "categorical": [{"name": "x", "classes": 3}]}})
    with pytest.raises(ValidationError, match="one per continuous dim"):
        Manifest.model_validate({**raw, "layout": {"continuous": d - 3, "categorical": [{"name": "x", "classes": 3}]}})


def test_factor_on_a_categorical_part_must_name_its_classes_and_dims() -> None:
    from contract.manifest import FactorCalibration

    with pytest.raises(ValidationError, match="part and classes come together"):
        FactorCalibration(name="digit", values=[0, 1], dims=[2, 3], codes=[[1, 0], [0, 1]], part="digit")
    with pytest.raises(ValidationError, match=r"classes must lie in \[0, 2\)"):
        FactorCalibration(
            name="digit", values=[0, 1], dims=[2, 3], codes=[[1, 0], [0, 1]], part="digit", classes=[0, 2]
        )
    raw = _manifest_dict()
    d = raw["latent_dim"]
    layout = {"continuous": d, "categorical": [{"name": "digit", "classes": 2}]}
    calibration = {
        "base": [0.0] * (d + 2),
        "factors": [{"name": "digit", "values": [0, 1], "dims": [0, 1], "codes": [[1, 0], [0, 1]],
                     "part": "digit", "classes": [0, 1]}],
    }  # fmt: skip
    with pytest.raises(ValidationError, match="that part's entries"):
        Manifest.model_validate({**raw, "latent_dim": d + 2, "layout": layout, "calibration": calibration})
    calibration["factors"][0]["dims"] = [d, d + 1]
    manifest = Manifest.model_validate({**raw, "latent_dim": d + 2, "layout": layout, "calibration": calibration})
    assert manifest.calibration is not None and manifest.calibration.factors[0].classes == [0, 1]


def test_a_version_1_manifest_written_again_stays_version_1(tmp_path: Path) -> None:
    """eval rewrites shipped manifests; the layout a version 1 file implies must not turn up in it."""
    (tmp_path / "manifest.json").write_text(json.dumps({**_manifest_dict(), "schema_version": 1}))
    write_manifest(tmp_path, read_manifest(tmp_path))
    raw = json.loads((tmp_path / "manifest.json").read_text())
    assert raw["schema_version"] == 1 and "layout" not in raw
    assert read_manifest(tmp_path).layout == LatentLayout(continuous=raw["latent_dim"])
