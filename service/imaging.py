"""Images in and out: PNG/JPEG bytes and float arrays to model tensors, model tensors to PNG and GIF.

Model tensors are float32 (C, H, W) in [0, 1]. What a picture becomes is the contract's rule
(``contract/images.py``, shared with the training data); this module decodes the bytes, within the
service's limits, and says why it refuses what it refuses. PNGs are written here rather than by Pillow: 8-bit grey or
RGB, no row filters, zlib level 1. On a 64x64 decoder output that takes half of Pillow's time at its own
level 1 (Pillow's per-call overhead dominates at this size) for files about 20% larger, and zlib releases the
GIL while it compresses, so the event loop keeps running. Reading still goes through Pillow.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image

from contract.grid import tile
from contract.images import prepare_array, prepare_pixels, to_pixels, unit_range, upright_pixels
from service.errors import Invalid, Rejected, TooLarge, shown

PNG_LEVEL = 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# MPO is what Pillow calls the JPEGs of many phone cameras (a JPEG with a second, embedded picture).
READABLE_FORMATS = ("PNG", "JPEG", "MPO")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def png(pixels: np.ndarray) -> bytes:
    """One (H, W) or (H, W, 3) uint8 image -> PNG bytes."""
    height, width = pixels.shape[:2]
    color_type = 0 if pixels.ndim == 2 else 2  # grey or RGB
    rows = np.zeros((height, 1 + pixels[0].size), dtype=np.uint8)  # each row starts with filter type 0
    rows[:, 1:] = pixels.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    data = zlib.compress(rows.tobytes(), PNG_LEVEL)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def pngs(images: np.ndarray) -> list[bytes]:
    return [png(p) for p in to_pixels(images)]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def gif(images: np.ndarray, frame_ms: int = 120) -> bytes:
    """(rows, steps, C, H, W) -> an animated GIF whose frame t shows every row's step t side by side."""
    frames = [tile(images[:, t][None]) for t in range(images.shape[1])]
    # Play forwards then backwards, so the loop has no jump.
    frames = frames + frames[-2:0:-1]
    pictures = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0)
    return buffer.getvalue()


def from_base64(text: str, field: str) -> bytes:
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(
            field,
            "a base64 PNG or JPEG (optionally a data: URL)",
            f"a string that is not base64: {shown(text)}",
        ) from None


class ImageReader:
    """Turns what callers send into the tensor one model expects, or a rejection saying why not."""

    def __init__(self, shape: tuple[int, int, int], max_side: int, resize: bool, max_pixels: int | None = None) -> None:
        self.channels, self.height, self.width = shape
        self.max_side = max_side
        self.resize = resize
        self.max_pixels = max_pixels if max_pixels is not None else max_side * max_side
        self.pixels = 0  # decoded so far for this request, against max_pixels

    def read_all(self, values: list[Any], field: str) -> np.ndarray:
        """(B, C, H, W) float32 from B strings, byte strings or nested lists."""
        return np.stack([self.read(value, f"{field}[{i}]") for i, value in enumerate(values)])

    def read(self, value: Any, field: str) -> np.ndarray:
        if isinstance(value, str):
            return self.from_bytes(from_base64(value, field), field)
        if isinstance(value, bytes):
            return self.from_bytes(value, field)
        return self.from_array(value, field)

    def from_bytes(self, data: bytes, field: str) -> np.ndarray:
        try:
            picture: Image.Image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise self._too_large(field, "an image whose header claims billions of pixels") from None
        except (OSError, ValueError):
            raise Invalid(field, "a PNG or JPEG image", f"{len(data)} bytes that are not one") from None
        if picture.format not in READABLE_FORMATS:
            raise Invalid(field, "a PNG or JPEG image", f"a {picture.format} image")
        width, height = picture.size
        if max(width, height) > self.max_side:
            raise self._too_large(field, f"{width}x{height} pixels")
        self._spend(field, width * height)
        try:
            pixels = upright_pixels(picture)  # (H, W) or (H, W, 3) uint8, as the picture is meant to be seen
        except (OSError, ValueError):
            raise Invalid(field, "a complete PNG or JPEG image", "a truncated or corrupt one") from None
        if pixels.shape[:2] != (self.height, self.width):
            self._check_size(field, pixels.shape[1], pixels.shape[0])
        return unit_range(prepare_pixels(pixels, (self.channels, self.height, self.width)))

    def from_array(self, value: Any, field: str) -> np.ndarray:
        """A (C, H, W) or (H, W) array, given as nested lists or already as numbers (``arraytext``)."""
        expected = f"a nested float array of shape {self._shapes()} with values in [0, 1]"
        try:
            array = np.asarray(value, dtype=np.float32)
        except (ValueError, TypeError):
            raise Invalid(field, expected, "a ragged or non-numeric array") from None
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3 or array.shape[0] not in (1, 3):
            raise Invalid(field, expected, f"shape {tuple(array.shape)}", hint="channels come first")
        if array.size == 0:
            raise Invalid(field, expected, f"an empty array of shape {tuple(array.shape)}")
        if max(array.shape[1:]) > self.max_side:
            raise self._too_large(field, f"{array.shape[2]}x{array.shape[1]} pixels")
        self._spend(field, array.shape[1] * array.shape[2])
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            low, high = float(np.nanmin(array)), float(np.nanmax(array))
            received = f"values in [{low}, {high}]" if math.isfinite(low + high) else "a non-finite value"
            raise Invalid(field, expected, received)
        if array.shape[1:] != (self.height, self.width):
            self._check_size(field, array.shape[2], array.shape[1])
        return prepare_array(array, (self.channels, self.height, self.width))

    def _spend(self, field: str, pixels: int) -> None:
        """Counts an image against the request's pixel budget before it is decoded or converted."""
        self.pixels += pixels
        if self.pixels > self.max_pixels:
            raise TooLarge(
                field,
                f"at most {self.max_pixels} pixels in one request, all images together",
                f"{self.pixels} with this image",
            )

    def _check_size(self, field: str, width: int, height: int) -> None:
        if not self.resize:
            raise Invalid(
                field,
                f"{self.width}x{self.height} pixels",
                f"{width}x{height}",
                hint="send resize: true to have the service resize it",
            )

    def _shapes(self) -> str:
        c, h, w = self.channels, self.height, self.width
        return f"({c}, {h}, {w}) or ({h}, {w})" if c == 1 else f"({c}, {h}, {w})"

    def _too_large(self, field: str, received: str) -> Rejected:
        return TooLarge(field, f"an image of at most {self.max_side} pixels a side", received)
