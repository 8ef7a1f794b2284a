"""The dataset interface every source implements: indices in, images (and factors) out.

Datasets render on demand instead of holding every image: ``images(indices)`` is vectorised over a batch
and deterministic, so a sampler that draws indices from a seeded generator reproduces a run exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract.manifest import DatasetInfo, FactorSpec

ParamValue = str | int | float | bool


def as_indices(indices: np.ndarray, size: int) -> np.ndarray:
    """Validate a batch of indices into a dataset of ``size`` images and return it as (B,) int64."""
    array = np.asarray(indices)
    if array.ndim != 1:
        raise ValueError(f"indices: expected a 1-D array (B,), got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"indices: expected integers, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.size and (array.min() < 0 or array.max() >= size):
        bad = int(array[(array < 0) | (array >= size)][0])
        raise IndexError(f"indices: expected values in [0, {size}), got {bad}")
    return array


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

    @property
    def params(self) -> dict[str, ParamValue]:
        """The constructor arguments that rebuild this dataset, recorded in the manifest."""
        return {}

    def tie_targets(self, name: str, classes: np.ndarray) -> np.ndarray:
        """(N, m) float64 targets that tie factor ``name`` to m continuous dims (``label_continuous``), from (N, F)
        factor classes: its value standardised over the factor's grid, which then spans the prior's bulk, about
        [-1.7, 1.7]. A dataset overrides this for a factor that one number does not describe (an angle)."""
        names = [f.name for f in self.factors]
        values = np.asarray(self.factors[names.index(name)].values, dtype=np.float64)  # (V,)
        value = values[classes[:, names.index(name)]]  # (N,)
        return ((value - values.mean()) / values.std())[:, None]

    def tie_shift(self, name: str) -> np.ndarray:
        """(2, m): how much moving an image one pixel right (row 0) and one down (row 1) changes factor ``name``'s
        ``tie_targets``, so that labelled images can be augmented by moves. Zero for a factor a move leaves as it
        is; a position changes, by an amount only its dataset knows, so a dataset overrides this to allow it."""
        if name in ("posX", "posY"):
            raise ValueError(f"label_continuous: {name} changes when the image moves; set label_shift = 0")
        m = self.tie_targets(name, np.zeros((1, len(self.factors)), dtype=np.int64)).shape[1]
        return np.zeros((2, m))

    def heldout_split(self) -> ImageDataset | None:
        """The same source's held-out images, which no model trains on and every figure is measured on (the
        real glyphs' fixed 1,000); None for a source without one, whose figures are on its own images."""
        return None

    def labelled_indices(self, fraction: float, rng: np.random.Generator) -> np.ndarray:
        """The sorted indices of few-label supervision's fixed subset (``label_fraction``): a ``fraction`` of
        the images. A dataset whose images repeat a smaller set of originals overrides this to count those."""
        count = max(1, round(fraction * len(self)))
        return np.sort(rng.choice(len(self), size=count, replace=False))

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name,
            factors=[FactorSpec(name=f.name, values=list(f.values)) for f in self.factors],
            size=len(self),
            params=self.params,
        )


class LabelledDataset(ImageDataset):
    """A dataset whose images carry known factor classes without forming a product grid (MNIST's digit).

    It shares ``index_to_factors`` with ``FactorDataset``, so code that needs (image, factors) pairs of
    sampled indices works on both; code that renders a chosen factor combination needs a ``FactorDataset``.
    """

    @property
    @abstractmethod
    def factors(self) -> list[Factor]: ...

    @abstractmethod
    def index_to_factors(self, indices: np.ndarray) -> np.ndarray:
        """(B,) -> (B, F) integer class of each factor."""


class FactorDataset(ImageDataset):
    """A dataset that is the full product grid of its factors, in row-major order (the last factor
    fastest)."""

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
        return np.stack(np.unravel_index(as_indices(indices, len(self)), tuple(self.factor_sizes)), axis=1)

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
