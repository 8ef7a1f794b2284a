"""Discrete mutual information between histogram-discretised codes and factor classes, in nats.

This is disentanglement_lib's estimator (``utils.histogram_discretize`` + ``sklearn.metrics.mutual_info_score``):
each code dimension is cut into ``bins`` equal-width bins spanning its observed range, and the mutual
information of the resulting labels with each factor is the plug-in estimate from their contingency table.
MIG and the factor calibration both read this matrix.
"""

from __future__ import annotations

import numpy as np

from training.evaluate.inputs import paired

DEFAULT_BINS = 20


def histogram_discretize(codes: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """(N, d) float -> (N, d) int in [0, bins): per column, the equal-width bin between its min and max.

    Bins are half-open ``[e_k, e_k+1)`` except the last, which holds the maximum, as ``np.histogram`` counts.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    labels = np.empty(codes.shape, dtype=np.int64)  # (N, d)
    for i in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, i], bins)  # (bins + 1,)
        labels[:, i] = np.digitize(codes[:, i], edges[:-1]) - 1
    return labels


def _compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """(N,) arbitrary ints -> (N,) ints in [0, K) and K, so a contingency table has no empty rows."""
    values, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(-1), values.size


def discrete_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats for two (N,) label arrays: sum over the joint table of p(a,b) log(p(a,b) / p(a)p(b))."""
    ia, na = _compact(a)
    ib, nb = _compact(b)
    joint = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb) / ia.size  # (na, nb)
    pa = joint.sum(axis=1, keepdims=True)  # (na, 1)
    pb = joint.sum(axis=0, keepdims=True)  # (1, nb)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])))


def discrete_entropy(labels: np.ndarray) -> float:
    """H(labels) in nats of one (N,) label array, from its empirical frequencies."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def factor_entropies(factors: np.ndarray) -> np.ndarray:
    """(N, F) classes -> (F,) empirical entropy of each factor in nats."""
    return np.array([discrete_entropy(factors[:, j]) for j in range(factors.shape[1])])


def mutual_information_matrix(codes: np.ndarray, factors: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """(N, d) codes and (N, F) factor classes -> (d, F) mutual information in nats, codes discretised into ``bins``."""
    z, y = paired(codes, factors)
    labels = histogram_discretize(z, bins)  # (N, d)
    return np.array(
        [[discrete_mutual_information(labels[:, i], y[:, j]) for j in range(y.shape[1])] for i in range(z.shape[1])]
    )
