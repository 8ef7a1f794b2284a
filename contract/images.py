"""The one preparation of a picture into a model input, and of a model output into 8-bit pixels.

A model input is float32 (C, H, W) in [0, 1], with C and (H, W) the manifest's ``image_shape``. Every picture a
model sees goes through here, whoever reads it: the folder dataset in training (``training/data/folder.py``)
and ``/encode`` and ``/traverse`` in the service (``service/imaging.py``). The rule, in order:

1. upright: the picture's EXIF orientation applied, as a photo viewer shows it (phones store photos sideways);
2. channels: RGB to grey by ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B, the weights of Pillow's "L"), grey
   to RGB by repeating it; transparency is dropped;
3. centre-cropped to the model's aspect ratio (square for every model so far): a picture is never stretched;
4. resized to (H, W) by Lanczos-3, its filter widened by the scale when shrinking (antialiased, as Pillow's
   LANCZOS), then clipped to [0, 1] (Lanczos overshoots at edges);
5. a picture's 8-bit pixels give 8-bit pixels (rounded to the nearest of 256 levels), so the folder dataset
   holds them as uint8 and still gives the very numbers ``/encode`` gives. A float array (``/encode``'s nested
   lists) skips steps 1 and 5.

Decoding bytes needs Pillow, which the contract does not import: a reader opens the file itself (with its own
limits and errors) and hands over the opened picture as a ``Picture``, anything with Pillow's ``convert`` and
``getexif``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, what Pillow's "L" conversion uses
ORIENTATION_TAG = 0x0112  # EXIF's Orientation
LANCZOS_LOBES = 3

# EXIF orientation -> the flip or turn that makes an (H, W, ...) array upright (Pillow's exif_transpose).
_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


class Picture(Protocol):
    """An opened picture: what the contract needs of a ``PIL.Image.Image``."""

    @property
    def mode(self) -> str: ...

    def convert(self, mode: str) -> Any: ...

    def getexif(self) -> Mapping[int, Any]: ...


def upright_pixels(picture: Picture) -> np.ndarray:
    """Steps 1 and 2's decoding: (H, W) uint8 for a grey picture, else (H, W, 3) uint8 RGB, as it is meant to be
    seen. Grey stays grey: luma of three equal channels gives the grey back exactly, so nothing is lost by not
    expanding it, and a grey upload (every picture this project draws) skips two conversions."""
    orientation = picture.getexif().get(ORIENTATION_TAG, 1)
    pixels = np.asarray(picture.convert("L" if picture.mode == "L" else "RGB"), dtype=np.uint8)
    turn = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None  # an unknown tag: as stored
    return np.ascontiguousarray(turn(pixels)) if turn else pixels


def prepare_pixels(pixels: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8, upright -> the model input as (C, H', W') uint8 (steps 2 to 5)."""
    image = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if image.shape == shape:  # already the model's channels and size: steps 2 to 5 give these pixels back
        return np.ascontiguousarray(image)
    return quantise(prepare_array(unit_range(image), shape))


def picture_input(picture: Picture, shape: tuple[int, int, int]) -> np.ndarray:
    """An opened picture -> the model input as (C, H, W) uint8: the whole rule."""
    return prepare_pixels(upright_pixels(picture), shape)


def prepare_array(image: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(1 or 3, H, W) float in [0, 1] -> the model input, float32 (C, H', W') in [0, 1] (steps 2 to 4)."""
    channels, height, width = shape
    if image.shape[0] == 3 and channels == 1:  # grey first: one plane to crop and resize instead of three
        image = np.tensordot(LUMA, image, axes=1)[None].astype(np.float32)
    if image.shape[1:] != (height, width):
        rows, cols = crop_box(image.shape[1], image.shape[2], height, width)
        image = resize(image[:, rows, cols], height, width)
    if image.shape[0] == 1 and channels == 3:
        image = np.repeat(image, 3, axis=0)
    # Luma's weights sum to 1 only up to float32 rounding, Lanczos overshoots: either can leave [0, 1].
    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)


def crop_box(height: int, width: int, to_height: int, to_width: int) -> tuple[slice, slice]:
    """The rows and columns of the largest centred box of a (height, width) picture with the aspect ratio of
    (to_height, to_width); an odd pixel left over goes to the bottom or right."""
    if width * to_height > height * to_width:  # wider than the model: keep every row
        keep = max(1, round(height * to_width / to_height))
        left = (width - keep) // 2
        return slice(0, height), slice(left, left + keep)
    keep = max(1, round(width * to_height / to_width))
    top = (height - keep) // 2
    return slice(top, top + keep), slice(0, width)


@lru_cache(maxsize=64)
def _lanczos(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) float64: row i holds every input sample's weight in output sample i."""
    scale = size_in / size_out
    stretch = max(scale, 1.0)  # shrinking: each output sample averages all the input it covers
    centres = (np.arange(size_out) + 0.5) * scale
    x = ((np.arange(size_in) + 0.5)[None, :] - centres[:, None]) / stretch  # (out, in), in filter units
    weights = np.where(np.abs(x) < LANCZOS_LOBES, np.sinc(x) * np.sinc(x / LANCZOS_LOBES), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)  # the edges lose taps: each row still sums to 1
    weights.flags.writeable = False  # cached and shared between threads
    return weights


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, H, W) float -> (C, height, width) float32 by separable Lanczos-3 (not clipped)."""
    out = image.astype(np.float64, copy=False)
    if out.shape[1] != height:
        out = np.matmul(_lanczos(out.shape[1], height), out)  # (height, H) @ (C, H, W)
    if out.shape[2] != width:
        out = np.matmul(out, _lanczos(out.shape[2], width).T)  # (C, height, W) @ (W, width)
    return out.astype(np.float32)


def quantise(images: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (clipped) -> uint8 of the same shape, rounded half up: the one 8-bit rounding."""
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def unit_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1] of the same shape (x / 255, in float32: the same numbers everywhere)."""
    return pixels.astype(np.float32) / np.float32(255.0)


def to_pixels(images: np.ndarray) -> np.ndarray:
    """(B, C, H, W) float in [0, 1] -> (B, H, W) or (B, H, W, 3) uint8: the pixels a PNG of each image holds."""
    pixels = quantise(images)
    return pixels[:, 0] if pixels.shape[1] == 1 else pixels.transpose(0, 2, 3, 1)
