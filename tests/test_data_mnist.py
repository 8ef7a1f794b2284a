"""MNIST: reading IDX files (raw and gz) that the test writes, the 64x64 layout, labels, clear errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from training.data.idx import read_idx
from training.data.mnist import MNIST

N_TRAIN, N_TEST = 12, 5


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def digit_images(n: int) -> np.ndarray:
    """(n, 28, 28) uint8: image i is a 10x10 block, solid but for a grey corner, on rows 4 + i % 9 onwards."""
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        images[i, 4 + i % 9 : 14 + i % 9, 9:19] = 255
        images[i, 4 + i % 9, 9] = 10 * i
    return images


def make_mnist(root: Path, suffix: str = "") -> tuple[np.ndarray, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    images, labels = digit_images(N_TRAIN), np.arange(N_TRAIN) % 10
    write(root / f"train-images-idx3-ubyte{suffix}", idx_bytes(images))
    write(root / f"train-labels-idx1-ubyte{suffix}", idx_bytes(labels))
    write(root / f"t10k-images-idx3-ubyte{suffix}", idx_bytes(digit_images(N_TEST)))
    write(root / f"t10k-labels-idx1-ubyte{suffix}", idx_bytes(np.arange(N_TEST) % 10))
    return images, labels


def test_reads_raw_idx_files_with_labels(tmp_path: Path) -> None:
    _, labels = make_mnist(tmp_path)
    mnist = MNIST(tmp_path)
    assert len(mnist) == N_TRAIN
    np.testing.assert_array_equal(mnist.labels, labels)
    np.testing.assert_array_equal(mnist.index_to_factors(np.array([3, 11])), [[3], [1]])
    assert [f.name for f in mnist.factors] == ["digit"] and list(mnist.factors[0].values) == list(range(10))
    info = mnist.info()
    assert info.size == N_TRAIN and info.params == {"root": str(tmp_path), "split": "train"}
    assert len(MNIST(tmp_path, split="test")) == N_TEST


def test_gz_files_read_the_same_as_raw(tmp_path: Path) -> None:
    make_mnist(tmp_path / "raw")
    make_mnist(tmp_path / "gz", suffix=".gz")
    indices = np.arange(N_TRAIN)
    raw, gz = MNIST(tmp_path / "raw"), MNIST(tmp_path / "gz")
    np.testing.assert_array_equal(gz.images(indices), raw.images(indices))
    np.testing.assert_array_equal(gz.labels, raw.labels)


def test_digits_are_padded_to_32_then_upsampled_2x(tmp_path: Path) -> None:
    images, _ = make_mnist(tmp_path)
    batch = MNIST(tmp_path).images(np.array([0, 5]))
    assert batch.shape == (2, 1, 64, 64) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0
    image = batch[1, 0]
    # Image 5 holds a block on rows 9..18, cols 9..18 of 28; padded by 2 it spans 11..20 of 32, so
    # 22..41 of 64: solid inside, a one-pixel bilinear fringe, black beyond.
    np.testing.assert_array_equal(image[25:41, 23:41], 1.0)  # the grey corner is on rows 22, 23
    assert image[:21].max() == 0.0 and image[43:].max() == 0.0
    assert image[:, :21].max() == 0.0 and image[:, 43:].max() == 0.0
    # Upsampling 2x keeps the ink: four output pixels per input pixel.
    np.testing.assert_allclose(image.sum(), 4 * images[5].sum() / 255, rtol=1e-5)


def test_a_missing_file_names_the_expected_files(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as caught:
        MNIST(tmp_path)
    message = str(caught.value)
    assert "no train-labels-idx1-ubyte (nor train-labels-idx1-ubyte.gz)" in message
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in message
    assert len(MNIST(tmp_path, split="test")) == N_TEST  # the other split is still complete
    with pytest.raises(FileNotFoundError, match="mnist: root: expected a folder"):
        MNIST(tmp_path / "nowhere")


def test_broken_files_get_errors_naming_file_expected_and_received(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte"
    write(labels, idx_bytes(np.arange(N_TRAIN))[:-3])  # truncated
    with pytest.raises(ValueError, match=rf"{labels}: IDX data: expected 12 bytes for shape \(12,\), got 9"):
        MNIST(tmp_path)
    write(labels, b"\x1f\x8b\x08\x03garbage")  # not IDX at all
    with pytest.raises(ValueError, match="expected an IDX header starting with two zero bytes"):
        MNIST(tmp_path)
    write(labels, idx_bytes(np.arange(N_TRAIN), type_code=0x07))
    with pytest.raises(ValueError, match="IDX type code: expected one of 0x08, .*, got 0x07"):
        MNIST(tmp_path)
    write(labels, idx_bytes(np.arange(N_TRAIN - 1)))
    with pytest.raises(ValueError, match=r"expected 12 labels \(one per image\), got shape \(11,\)"):
        MNIST(tmp_path)
    write(labels, idx_bytes(np.full(N_TRAIN, 10)))
    with pytest.raises(ValueError, match="expected labels 0-9, got 10..10"):
        MNIST(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((N_TRAIN, 32, 32))))
    with pytest.raises(ValueError, match=r"images of shape \(N, 28, 28\), got uint8 \(12, 32, 32\)"):
        MNIST(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: cannot read it as an IDX file"):
        MNIST(tmp_path, split="test")


def test_idx_reader_handles_other_element_types(tmp_path: Path) -> None:
    values = np.array([[-1.5, 2.0], [3.25, 1e6]], dtype=">f4")
    header = bytes([0, 0, 0x0D, 2]) + struct.pack(">2I", 2, 2)
    path = write(tmp_path / "floats.idx", header + values.tobytes())
    np.testing.assert_array_equal(read_idx(path), values)


def test_bad_split_and_indices_get_clear_errors(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    with pytest.raises(ValueError, match=r"split: expected one of \['test', 'train'\], got 'validation'"):
        MNIST(tmp_path, split="validation")
    with pytest.raises(IndexError, match=r"indices: expected values in \[0, 12\), got 12"):
        MNIST(tmp_path).images(np.array([12]))
