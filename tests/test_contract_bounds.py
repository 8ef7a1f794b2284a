"""The latent bounds derived from an artifact (contract/bounds.py), and every shipped manifest under the
contract: it loads, its prior is what its family draws from, and its default ranges lie within its bounds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from service_harness import REPO, calibrated_request

from contract.bounds import NORMAL_REACH, latent_bounds
from contract.calibration import latent_for
from contract.manifest import ContinuousPrior, Manifest, read_manifest
from contract.ranges import default_ranges

SHIPPED = sorted(p.parent for p in (REPO / "models").glob("*/manifest.json"))


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_manifest_loads_with_the_prior_its_family_draws_from(folder: Path) -> None:
    manifest = read_manifest(folder)
    written = json.loads((folder / "manifest.json").read_text()).get("layout", {})
    prior = manifest.layout.prior
    if "prior" not in written:  # a manifest from before the prior: N(0, 1), whatever its family
        assert prior.kind == "normal"
    # InfoGAN's G draws its continuous codes from U(-1, 1); a plain autoencoder has no prior.
    assert prior.kind == {"infogan": "uniform", "ae": "none"}.get(manifest.objective, "normal")
    if prior.kind == "uniform":
        assert (prior.low, prior.high) == (-1.0, 1.0)


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_models_ranges_and_calibration_lie_within_its_bounds(folder: Path) -> None:
    manifest = read_manifest(folder)
    bounds = latent_bounds(manifest)
    for dim, span in enumerate(default_ranges(manifest)):
        if span is not None:
            assert bounds.low[dim] <= span[0] < span[1] <= bounds.high[dim], dim
    if manifest.calibration is not None:
        rng = np.random.default_rng(0)
        latents = np.stack([latent_for(manifest.calibration, calibrated_request(manifest, rng)) for _ in range(300)])
        assert bounds.outside(latents) is None
        # Each factor alone at each of its calibrated values: the extremes of a dim are reached this way.
        for factor in manifest.calibration.factors:
            for value in factor.values:
                assert bounds.outside(latent_for(manifest.calibration, {factor.name: value})[None]) is None


def test_a_normal_priors_model_keeps_the_bound_of_twenty_and_the_autoencoder_gets_its_codes_reach() -> None:
    """The autoencoder's codes reach -45 and +44 (3.4 sd of its dims) on dSprites."""
    vae = latent_bounds(read_manifest(REPO / "models" / "dsprites_vae"))
    assert vae.pairs() == [(-NORMAL_REACH, NORMAL_REACH)] * 10
    ae_manifest = read_manifest(REPO / "models" / "dsprites_ae")
    ae = latent_bounds(ae_manifest)
    # The request of issue 27 that the fixed bound of 20 refused (latent[0][2] was -22.2) is inside now.
    asked = latent_for(ae_manifest.calibration, {"shape": "square", "scale": 1.0, "posX": 0.5, "posY": 0.5})  # type: ignore[arg-type]
    assert asked[2] < -20 and ae.outside(asked[None]) is None
    assert (ae.low < -40).all() and (ae.high > 40).all()
    # Without its prior (an older manifest of the same model) the encodings and calibration still bound it.
    normal_layout = ae_manifest.layout.model_copy(update={"prior": ContinuousPrior()})
    older = ae_manifest.model_copy(update={"layout": normal_layout})
    normal = latent_bounds(older)
    assert (normal.low <= ae.low).all() and (normal.high >= ae.high).all() and normal.low.max() < -40


def test_uniform_codes_are_bounded_by_their_prior_and_encodings_noise_by_the_normal_parts_by_one() -> None:
    manifest = read_manifest(REPO / "models" / "digits_joint_vae")
    stats = [{"index": 0, "mean": 0.1, "std": 0.2, "kl": 0.0, "active": True}] + [
        {"index": j, "mean": 0.0, "std": 0.05, "kl": 0.0, "active": True} for j in range(1, 3)
    ]
    uniform = Manifest.model_validate(
        manifest.model_dump()
        | {
            "objective": "infogan", "latent_dim": 3 + 10 + 4, "latent_stats": stats, "calibration": None,
            "layout": {"continuous": 3, "categorical": [{"name": "digit", "classes": 10}], "noise": 4,
                       "prior": {"kind": "uniform", "low": -1.0, "high": 1.0}},
        }
    )  # fmt: skip
    bounds = latent_bounds(uniform)
    # dim 0: U(-1, 1) and its encodings 0.1 +- 6 * 0.2 = [-1.1, 1.3]; dims 1, 2: the prior alone.
    assert bounds.pairs()[:3] == [
        (pytest.approx(-1.1), pytest.approx(1.3)), (-1.0, 1.0), (-1.0, 1.0)
    ]  # fmt: skip
    assert bounds.pairs()[3:13] == [(0.0, 1.0)] * 10
    assert bounds.pairs()[13:] == [(-NORMAL_REACH, NORMAL_REACH)] * 4
    inside = np.zeros((1, 17), np.float32)
    inside[0, 3] = 1.0
    assert bounds.outside(inside) is None
    for dim, value in [(1, 1.01), (2, np.nan), (16, -21.0), (5, 1.5)]:
        outside = inside.copy()
        outside[0, dim] = value
        assert bounds.outside(np.concatenate([inside, outside])) == (1, dim)
