"""Any folder of PNG/JPEG images (searched recursively), as the model's channels and resolution; no factors.

Every file is read once at construction and prepared by the contract's one rule for pictures
(``contract/images.py``, what ``/encode`` applies to an upload too): EXIF rotation applied, converted
to grey (``channels=1``) or RGB (``channels=3``; transparency is dropped), centre-cropped to a square and
resized to ``size`` x ``size`` with Lanczos filtering; then held in memory as uint8 (N * channels * size * size
bytes). Files are ordered by path, so an index names the same image on every machine.

Usage: ``ImageFolder("photos", channels=3).images(np.array([0]))`` -> (1, 3, 64, 64) float32 in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from contract.images import picture_input, unit_range
from training.data.base import ImageDataset, ParamValue, as_indices

EXTENSIONS = (".png", ".jpg", ".jpeg")


def load_image(path: Path, channels: int, size: int) -> np.ndarray:
    """One file as (channels, size, size) uint8; a file Pillow cannot decode raises ValueError naming it."""
    try:
        with Image.open(path) as picture:
            return picture_input(picture, (channels, size, size))
    except (OSError, Image.DecompressionBombError) as err:
        raise ValueError(f"folder: cannot read {path} as an image: {err}") from err


class ImageFolder(ImageDataset):
    name = "folder"

    def __init__(self, root: str | Path, channels: int = 3, size: int = 64) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels not in (1, 3):
            raise ValueError(f"folder: channels: expected 1 or 3, got {channels!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"folder: size: expected a positive integer (pixels per side), got {size!r}")
        self._root = Path(root)
        if not self._root.is_dir():
            raise FileNotFoundError(f"folder: root: expected a folder of PNG/JPEG images, got {root!r}")
        paths = sorted(p for p in self._root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        if not paths:
            raise ValueError(
                f"folder: no images under {self._root}: expected files ending in {', '.join(EXTENSIONS)} "
                "(any case, in any subfolder)"
            )
        self.paths = paths
        self.image_shape = (channels, size, size)
        self._pixels = np.stack([load_image(p, channels, size) for p in paths])  # (N, C, size, size) uint8

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def params(self) -> dict[str, ParamValue]:
        channels, size, _ = self.image_shape
        return {"root": str(self._root), "channels": channels, "size": size}

    def images(self, indices: np.ndarray) -> np.ndarray:
        return unit_range(self._pixels[as_indices(indices, len(self))])
