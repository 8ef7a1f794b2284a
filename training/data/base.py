"""The dataset interface every source implements: indices in, images (and factors) out.

Datasets render on demand instead of holding every image: ``images(indices)`` is vectorised over a batch
and deterministic, so a sampler that draws indices from a seeded generator reproduces a run exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.artifact import DatasetInfo, FactorSpec


@dataclass(frozen=True)
class Factor:
    name: str
    values: Sequence[float | str]

    @property
    def size(self) -> int:
        return len(self.values)


class ImageDataset(ABC):
    """A finite, indexable set of images of shape ``image_shape`` = (C, H, W), values in [0, 1]."""

    name: str
    image_shape: tuple[int, int, int]

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def images(self, indices: np.ndarray) -> np.ndarray:
        """(B,) int64 -> (B, C, H, W) float32 in [0, 1]."""

    @property
    def factors(self) -> list[Factor]:
        return []

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name,
            factors=[FactorSpec(name=f.name, values=list(f.values)) for f in self.factors],
            size=len(self),
        )


class FactorDataset(ImageDataset):
    """A dataset that is the full product grid of its factors, in row-major order (the last factor fastest)."""

    @property
    @abstractmethod
    def factors(self) -> list[Factor]: ...

    @property
    def factor_sizes(self) -> np.ndarray:
        return np.array([f.size for f in self.factors], dtype=np.int64)

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes))

    def index_to_factors(self, indices: np.ndarray) -> np.ndarray:
        """(B,) -> (B, F) integer class of each factor."""
        return np.stack(np.unravel_index(np.asarray(indices, dtype=np.int64), tuple(self.factor_sizes)), axis=1)

    def factors_to_index(self, classes: np.ndarray) -> np.ndarray:
        """(B, F) integer classes -> (B,) index; the inverse of ``index_to_factors``."""
        classes = np.asarray(classes, dtype=np.int64)
        return np.ravel_multi_index(tuple(classes.T), tuple(self.factor_sizes)).astype(np.int64)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, F) factor classes drawn uniformly and independently."""
        return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1)

    def render(self, classes: np.ndarray) -> np.ndarray:
        """(B, F) factor classes -> (B, C, H, W) float32 images."""
        return self.images(self.factors_to_index(classes))
