"""get_dataset: every source by name, and wrong names or parameters answered with the valid ones."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import DATASETS, get_dataset
from training.data.base import FactorDataset, LabelledDataset


def test_names_every_source() -> None:
    assert DATASETS == ("dsprites", "digits", "handwriting", "mnist", "folder")


@pytest.mark.parametrize(("name", "size"), [("dsprites", 737_280), ("digits", 90_720)])
def test_builds_the_procedural_sources_without_parameters(name: str, size: int) -> None:
    dataset = get_dataset(name)
    assert isinstance(dataset, FactorDataset) and dataset.name == name and len(dataset) == size
    assert dataset.images(np.array([0, size - 1])).shape == (2, 1, 64, 64)


def test_builds_a_folder_with_its_parameters(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), (255, 255, 255)).save(tmp_path / "white.png")
    dataset = get_dataset("folder", root=str(tmp_path), channels=1, size=32)
    assert dataset.image_shape == (1, 32, 32)
    np.testing.assert_array_equal(dataset.images(np.array([0])), 1.0)


def test_mnist_is_labelled_but_not_a_grid(tmp_path: Path) -> None:
    # IDX: zero, zero, type 0x08 (uint8), the number of dims, each size as big-endian uint32, the bytes.
    images = bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 28, 28) + bytes(2 * 28 * 28)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(images)
    labels = bytes([0, 0, 8, 1]) + struct.pack(">I", 2) + bytes([7, 3])
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(labels)
    dataset = get_dataset("mnist", root=str(tmp_path), split="test")
    assert isinstance(dataset, LabelledDataset) and not isinstance(dataset, FactorDataset)
    np.testing.assert_array_equal(dataset.index_to_factors(np.array([0, 1])), [[7], [3]])


def test_an_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="expected one of dsprites, digits, handwriting, mnist, folder, got 'cifar'"):
        get_dataset("cifar")


def test_unknown_or_missing_parameters_list_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dataset 'dsprites': unknown parameter.* size; valid: none"):
        get_dataset("dsprites", size=32)
    with pytest.raises(ValueError, match="'folder': unknown parameter.* colour; valid: root, channels, size"):
        get_dataset("folder", root=str(tmp_path), colour=3)
    with pytest.raises(ValueError, match="dataset 'folder': missing parameter.* root; valid: root, channels, size"):
        get_dataset("folder")
