"""Validation of the arrays the metrics take, so that bad input fails with a message instead of deep in numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_codes(codes: np.ndarray, field: str = "codes") -> np.ndarray:
    """A finite (N, d) float64 array, or a ValueError naming ``field``."""
    array = np.asarray(codes, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"{field} must be a 2-D array (N >= 2, d >= 1), got shape {array.shape}")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise ValueError(f"{field} must be finite, got {bad} non-finite entries")
    return array


def as_factors(factors: np.ndarray, field: str = "factors") -> np.ndarray:
    """A (N, F) int64 array of factor classes (each >= 0), or a ValueError naming ``field``."""
    array = np.asarray(factors)
    if array.ndim != 2 or array.shape[1] < 1:
        raise ValueError(f"{field} must be a 2-D array (N, F >= 1) of integer classes, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{field} must hold integer classes, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError(f"{field} must hold classes >= 0, got minimum {array.min()}")
    return array.astype(np.int64, copy=False)


def paired(codes: np.ndarray, factors: np.ndarray, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Validated (codes (N, d), factors (N, F)) with the same N and every factor taking >= 2 values."""
    z = as_codes(codes, f"{prefix}codes")
    y = as_factors(factors, f"{prefix}factors")
    if z.shape[0] != y.shape[0]:
        raise ValueError(
            f"{prefix}codes and {prefix}factors must have the same number of rows, got {z.shape[0]} and {y.shape[0]}"
        )
    for j in range(y.shape[1]):
        if np.unique(y[:, j]).size < 2:
            raise ValueError(f"{prefix}factors column {j} must take at least 2 values, got only {y[0, j]}")
    return z, y


def factor_names(names: Sequence[str] | None, num_factors: int) -> tuple[str, ...]:
    """The given names (one per factor) or ``f0, f1, ...``."""
    if names is None:
        return tuple(f"f{j}" for j in range(num_factors))
    if len(names) != num_factors:
        raise ValueError(f"names must have one entry per factor ({num_factors}), got {len(names)}: {list(names)}")
    return tuple(names)


def paired_splits(
    codes_train: np.ndarray, factors_train: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated train and test pairs whose codes have the same dims and whose factors the same columns."""
    z, y = paired(codes_train, factors_train, "train ")
    z_test, y_test = paired(codes_test, factors_test, "test ")
    if z_test.shape[1] != z.shape[1] or y_test.shape[1] != y.shape[1]:
        raise ValueError(
            f"test codes/factors must have {z.shape[1]} dims and {y.shape[1]} factors like the training set, "
            f"got {z_test.shape[1]} and {y_test.shape[1]}"
        )
    return z, y, z_test, y_test
