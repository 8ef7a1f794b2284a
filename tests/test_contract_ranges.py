"""The one default range of a latent dim (contract/ranges.py), and that the card walks it."""

from __future__ import annotations

import numpy as np
import pytest

from contract.manifest import LatentStat, Manifest
from contract.ranges import centre, dim_range, stat_range
from training.card import traversal_values


def _stat(mean: float, std: float) -> LatentStat:
    return LatentStat(index=0, mean=mean, std=std, kl=0.0, active=True)


def test_the_range_covers_the_prior_and_the_data() -> None:
    assert stat_range(_stat(0.0, 0.5)) == (-3.0, 3.0)  # a VAE's dim: within the prior
    assert stat_range(_stat(0.0, 0.0)) == (-3.0, 3.0)  # an inactive one: the prior, showing it does nothing
    assert stat_range(_stat(1.0, 2.0)) == (-5.0, 7.0)  # an autoencoder's wide codes
    assert stat_range(_stat(10.0, 0.1)) == (-3.0, pytest.approx(10.3))  # codes off the prior stay in reach
    assert stat_range(None) == (-3.0, 3.0)  # a GAN's noise: no statistics


def _manifest(prior: dict[str, object] | None = None) -> Manifest:
    stats = [_stat(0.0, 0.5).model_copy(update={"index": 0}), _stat(4.0, 1.0).model_copy(update={"index": 1})]
    return Manifest.model_validate(
        {
            "name": "m", "objective": "infogan", "architecture": "conv", "likelihood": "bernoulli",
            "dataset": {"name": "dsprites"}, "latent_dim": 6, "image_shape": [1, 64, 64],
            "layout": {"continuous": 2, "categorical": [{"name": "shape", "classes": 3}], "noise": 1}
            | ({"prior": prior} if prior else {}),
            "latent_stats": [s.model_dump() for s in stats], "code_version": "test",
            "training": {"steps": 0, "images_seen": 0, "wall_time_s": 0, "device": "cpu", "precision": "fp32"},
            "files": {k: {"path": f"{k}.onnx", "sha256": "0" * 64} for k in ("encoder", "decoder")},
        }
    )  # fmt: skip


def test_dim_range_reads_a_continuous_dims_stats_and_gives_noise_the_prior() -> None:
    manifest = _manifest()
    assert dim_range(manifest, 0) == (-3.0, 3.0)
    assert dim_range(manifest, 1) == (-3.0, 7.0)
    assert dim_range(manifest, 5) == (-3.0, 3.0)  # the noise dim
    with pytest.raises(ValueError, match="categorical part"):
        dim_range(manifest, 3)
    with pytest.raises(ValueError, match=r"in \[0, 6\)"):
        dim_range(manifest, 6)


def test_codes_drawn_from_a_uniform_prior_span_it_whatever_their_encodings() -> None:
    manifest = _manifest({"kind": "uniform", "low": -1.0, "high": 1.0})
    assert dim_range(manifest, 0) == dim_range(manifest, 1) == (-1.0, 1.0)  # stats of dim 1: mean 4, std 1
    assert dim_range(manifest, 5) == (-3.0, 3.0)  # the noise stays N(0, 1)
    np.testing.assert_allclose(traversal_values(manifest, 1, steps=3), [-1.0, 0.0, 1.0])


def test_codes_without_a_prior_span_their_encodings_and_centre_on_their_mean() -> None:
    manifest = _manifest({"kind": "none"})
    assert dim_range(manifest, 1) == (1.0, 7.0)  # mean 4, std 1
    np.testing.assert_array_equal(centre(manifest), [0.0, 4.0, 1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(centre(_manifest({"kind": "uniform", "low": 0.0, "high": 2.0})), [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(centre(_manifest()), [0.0, 0.0, 1.0, 0.0, 0.0, 0.0])


def test_the_card_walks_the_same_range() -> None:
    values = traversal_values(_manifest(), 1, steps=5)
    np.testing.assert_allclose(values, np.linspace(-3.0, 7.0, 5))
