"""KL per dimension, active dimensions and the total-correlation estimate, against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.evaluate.unsupervised import (
    ACTIVE_KL_NATS,
    active_dims,
    kl_per_dim,
    total_correlation_at,
    total_correlation_estimate,
)


def test_kl_per_dim_matches_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    direct = [
        sum(0.5 * (mu[n, j] ** 2 + math.exp(logvar[n, j]) - logvar[n, j] - 1) for n in range(50)) / 50 for j in range(4)
    ]
    assert kl_per_dim(mu, logvar) == pytest.approx(direct, abs=1e-12)


def test_a_dim_at_the_prior_is_inactive_and_a_used_one_active() -> None:
    rng = np.random.default_rng(1)
    mu = np.stack([rng.normal(size=1000), np.full(1000, 1e-3)], axis=1)  # dim 0 varies, dim 1 sits at the prior
    logvar = np.stack([np.full(1000, -4.0), np.full(1000, -1e-3)], axis=1)
    kl = kl_per_dim(mu, logvar)
    assert kl[1] < ACTIVE_KL_NATS < kl[0]
    assert active_dims(kl).tolist() == [True, False]
    assert active_dims(kl, threshold=kl[0] + 1).tolist() == [False, False]


def direct_total_correlation(z: np.ndarray, mu: np.ndarray, logvar: np.ndarray, n: int) -> float:
    """Loops over the estimator: own posterior weight 1/N, each other point (N - 1) / (N (M - 1))."""
    m, d = mu.shape

    def density(i: int, k: int, j: int) -> float:
        var = math.exp(logvar[k, j])
        return math.exp(-((z[i, j] - mu[k, j]) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)

    total = 0.0
    for i in range(m):
        weights = [1 / n if k == i else (n - 1) / (n * (m - 1)) for k in range(m)]
        joint = sum(w * math.prod(density(i, k, j) for j in range(d)) for k, w in enumerate(weights))
        marginals = [sum(w * density(i, k, j) for k, w in enumerate(weights)) for j in range(d)]
        total += math.log(joint) - sum(math.log(q) for q in marginals)
    return total / m


def test_total_correlation_matches_a_direct_computation_of_its_formula() -> None:
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(30, 3))
    mu[:, 1] += mu[:, 0]
    logvar = rng.normal(-1, 0.3, size=(30, 3))
    z = mu + np.exp(0.5 * logvar) * rng.normal(size=(30, 3))
    for dataset_size in (30, 1000):
        assert total_correlation_at(z, mu, logvar, dataset_size) == pytest.approx(
            direct_total_correlation(z, mu, logvar, dataset_size), abs=1e-9
        )


def gaussian_total_correlation(cov: np.ndarray) -> float:
    return 0.5 * (float(np.sum(np.log(np.diag(cov)))) - float(np.linalg.slogdet(cov)[1]))


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_total_correlation_estimate_approaches_the_gaussian_value(rho: float) -> None:
    """Gaussian means with posterior variance s^2 make a Gaussian aggregate posterior, cov + s^2 I, whose total
    correlation is known in closed form; the sample is the whole dataset (M = N)."""
    rng = np.random.default_rng(3)
    cov = np.array([[1.0, rho, 0.0], [rho, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mu = rng.multivariate_normal(np.zeros(3), cov, size=3000)
    logvar = np.full_like(mu, math.log(0.1))
    estimate = total_correlation_estimate(mu, logvar, dataset_size=3000, rng=rng)
    assert estimate == pytest.approx(gaussian_total_correlation(cov + 0.1 * np.eye(3)), abs=0.05)


def test_bad_posteriors_are_rejected_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"mu and logvar must have the same shape, got \(4, 2\) and \(4, 3\)"):
        kl_per_dim(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="logvar must be finite, got 1 non-finite"):
        kl_per_dim(np.zeros((4, 2)), np.array([[0, 0], [0, np.inf], [0, 0], [0, 0]]))
    with pytest.raises(ValueError, match=r"dataset_size must be >= the number of samples \(4\), got 3"):
        total_correlation_estimate(np.zeros((4, 2)), np.zeros((4, 2)), 3, np.random.default_rng(0))
