"""Statistics of the encoder's posteriors that need no factors: KL per dimension, active dimensions and an
estimate of the total correlation of the aggregate posterior.
"""

from __future__ import annotations

import math

import numpy as np

from contract.manifest import ACTIVE_KL_NATS
from training.evaluate.inputs import as_codes

"""A dim is active when its average KL to the prior exceeds this many nats. A collapsed dim sits at ~1e-4
nats and one that carries any factor of dSprites at >= 0.1, so the exact value hardly matters; it is the same
threshold ``training.export`` writes into the manifest's latent_stats."""

PAIR_BUDGET = 1 << 22  # floats held at once by the pairwise density, (rows, M, d), about 32 MB


def _posteriors(mu: np.ndarray, logvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = as_codes(mu, "mu")
    lv = as_codes(logvar, "logvar")
    if m.shape != lv.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {m.shape} and {lv.shape}")
    return m, lv


def kl_per_dim(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """(N, d) posterior means and log variances -> (d,) average KL(q(z_j|x) || N(0, 1)) in nats.

    Kingma & Welling 2014, Appendix B: KL = (mu^2 + exp(logvar) - logvar - 1) / 2 per dim.
    """
    m, lv = _posteriors(mu, logvar)
    return np.mean(0.5 * (m**2 + np.exp(lv) - lv - 1.0), axis=0)


def active_dims(kl: np.ndarray, threshold: float = ACTIVE_KL_NATS) -> np.ndarray:
    """(d,) KL per dim -> (d,) bool, True where the KL exceeds ``threshold`` nats."""
    values = np.asarray(kl, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"kl must be a 1-D array (d,), got shape {values.shape}")
    return values > threshold


def _gaussian_log_density(z: np.ndarray, mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 * np.exp(-logvar))


def total_correlation_at(z: np.ndarray, mu: np.ndarray, logvar: np.ndarray, dataset_size: int) -> float:
    """TC = E[log q(z) - sum_j log q(z_j)] in nats at samples z_i ~ q(z|x_i), i over a uniform sample of M points.

    q(z) = 1/N sum_n q(z|x_n) (Chen et al. 2018, eq. 3) is estimated from the sample as in their minibatch
    estimators (Sec. 4.1): the point's own posterior carries weight 1/N, each of the M - 1 others stands for
    (N - 1) / (M - 1) points of the dataset. With M = N this is the exact mixture. (Their weighted-sampling
    variant puts 1/(NM) on every pair, which adds about (d - 1) log M when M approaches N.)
    """
    m, lv = _posteriors(mu, logvar)
    samples = as_codes(z, "z")
    if samples.shape != m.shape:
        raise ValueError(f"z must have the shape of mu {m.shape}, got {samples.shape}")
    size, dims = m.shape
    if dataset_size < size:
        raise ValueError(f"dataset_size must be >= the number of samples ({size}), got {dataset_size}")
    other = math.log((dataset_size - 1) / (dataset_size * (size - 1)))
    rows = max(1, PAIR_BUDGET // (size * dims))
    tc = np.empty(size)
    for start in range(0, size, rows):
        idx = np.arange(start, min(start + rows, size))  # (r,)
        pair = _gaussian_log_density(samples[idx, None, :], m[None], lv[None])  # (r, M, d): log q(z_i,j | x_k)
        log_w = np.full((idx.size, size), other)  # (r, M)
        log_w[np.arange(idx.size), idx] = -math.log(dataset_size)
        joint = _logsumexp(log_w + pair.sum(axis=2), axis=1)  # (r,)
        marginals = _logsumexp(log_w[:, :, None] + pair, axis=1).sum(axis=1)  # (r,)
        tc[idx] = joint - marginals
    return float(tc.mean())


def total_correlation_estimate(
    mu: np.ndarray, logvar: np.ndarray, dataset_size: int, rng: np.random.Generator
) -> float:
    """Total correlation of the aggregate posterior in nats, from one z ~ q(z|x) per row of (M, d) mu, logvar.

    ``dataset_size`` is N, the number of images the M rows were drawn from; see ``total_correlation_at``.
    """
    m, lv = _posteriors(mu, logvar)
    z = m + np.exp(0.5 * lv) * rng.standard_normal(m.shape)  # (M, d)
    return total_correlation_at(z, m, lv, dataset_size)


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(x - top), axis=axis))
