"""Where codes come from: factor classes in, mean representations out.

Metrics that hold a factor fixed (FactorVAE, beta-VAE) must choose the factors they render, so they take a
``CodeSource`` rather than a fixed sample. ``CodeSource.from_dataset`` renders a ``FactorDataset`` and encodes
it; tests build one straight from a function of the classes, so they need no images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from training.data.base import FactorDataset

Represent = Callable[[np.ndarray], np.ndarray]
"""images (B, C, H, W) float32 -> codes (B, d): the mean representation, deterministic."""

CodesOf = Callable[[np.ndarray], np.ndarray]
"""factor classes (B, F) int64 -> codes (B, d)."""

DEFAULT_CHUNK = 1024


@dataclass(frozen=True)
class CodeSource:
    """A factor grid of ``factor_sizes`` and the code of each point on it.

    ``codes_of`` is called with at most ``chunk`` rows at a time, so an encoder sees batches it can hold.
    """

    factor_sizes: tuple[int, ...]
    codes_of: CodesOf
    names: tuple[str, ...]
    chunk: int = DEFAULT_CHUNK

    def __post_init__(self) -> None:
        if not self.factor_sizes or any(s < 2 for s in self.factor_sizes):
            raise ValueError(f"factor_sizes must be non-empty with every size >= 2, got {list(self.factor_sizes)}")
        if len(self.names) != len(self.factor_sizes):
            raise ValueError(f"names must have one entry per factor ({len(self.factor_sizes)}), got {list(self.names)}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")

    @classmethod
    def from_function(
        cls, factor_sizes: Sequence[int], codes_of: CodesOf, names: Sequence[str] | None = None
    ) -> CodeSource:
        sizes = tuple(int(s) for s in factor_sizes)
        return cls(sizes, codes_of, tuple(names) if names is not None else tuple(f"f{j}" for j in range(len(sizes))))

    @classmethod
    def from_dataset(cls, dataset: FactorDataset, represent: Represent, chunk: int = DEFAULT_CHUNK) -> CodeSource:
        """Codes of the dataset's own renders. Factors of a single value (e.g. a fixed colour) are not allowed:
        they carry no information and would divide by a zero entropy."""
        return cls(
            tuple(int(s) for s in dataset.factor_sizes),
            lambda classes: represent(dataset.render(classes)),
            tuple(f.name for f in dataset.factors),
            chunk,
        )

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, F) classes, each factor drawn uniformly and independently."""
        return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1).astype(np.int64)

    def codes(self, classes: np.ndarray) -> np.ndarray:
        """(B, F) classes -> (B, d) float64 codes, checked for shape and finiteness."""
        parts: list[np.ndarray] = []
        for start in range(0, classes.shape[0], self.chunk):
            batch = classes[start : start + self.chunk]  # (b, F)
            out = np.asarray(self.codes_of(batch), dtype=np.float64)
            if out.ndim != 2 or out.shape[0] != batch.shape[0]:
                raise ValueError(f"the representation must return ({batch.shape[0]}, d) codes, got shape {out.shape}")
            if not np.all(np.isfinite(out)):
                raise ValueError(f"the representation returned {np.count_nonzero(~np.isfinite(out))} non-finite values")
            if parts and out.shape[1] != parts[0].shape[1]:
                raise ValueError(f"the representation must return {parts[0].shape[1]} dims, got {out.shape[1]}")
            parts.append(out)
        return np.concatenate(parts, axis=0)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` uniform draws: codes (n, d) and their factor classes (n, F)."""
        if n < 2:
            raise ValueError(f"the number of points must be >= 2, got {n}")
        classes = self.sample_factors(n, rng)
        return self.codes(classes), classes
