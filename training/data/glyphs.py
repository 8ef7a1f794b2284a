"""Anti-aliased sprites of the digits 0-9, drawn with the TrueType font that ships inside Pillow.

``ImageFont.load_default(size=...)`` returns Pillow's bundled Aileron Regular as a real FreeType font
(Pillow >= 10.1 built with FreeType), so nothing is downloaded and every machine draws the same glyphs.
Each digit is drawn once, large, at ``SUPERSAMPLE`` times the largest requested height; its strokes are
thinned or thickened there by grey-level erosion or dilation with a disc, so a stroke change is the same
fraction of the glyph at every size. Each version is then shrunk to every height (box filter), rotated
about the centre of its ink box, and box-averaged down by ``SUPERSAMPLE``: the edges are anti-aliased grey
levels in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SUPERSAMPLE = 4
_CALIBRATION_SIZE = 100


def _font(size: float) -> ImageFont.FreeTypeFont:
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise RuntimeError("digits: Pillow has no FreeType support, so its built-in TrueType font is missing")
    return font


def font_size_for_height(height: float) -> float:
    """The font size at which the digit "0" stands ``height`` pixels tall (its ink, top to bottom)."""
    _, top, _, bottom = _font(_CALIBRATION_SIZE).getbbox("0")
    return height * _CALIBRATION_SIZE / (bottom - top)


def draw_centred(text: str, font: ImageFont.FreeTypeFont, size: int) -> np.ndarray:
    """``text`` in white on a black size x size canvas, its ink bounding box centred: (size, size) float32."""
    left, top, right, bottom = font.getbbox(text)
    scratch = Image.new("L", (int(right - left) + 4, int(bottom - top) + 4))
    ImageDraw.Draw(scratch).text((2 - left, 2 - top), text, font=font, fill=255)
    ink = np.asarray(scratch)
    cols, rows = np.flatnonzero(ink.any(axis=0)), np.flatnonzero(ink.any(axis=1))
    # The ink box [first, last + 1) has its centre at (first + last + 1) / 2; crop so it lands on size / 2.
    x0 = (cols[0] + cols[-1] + 1 - size) // 2
    y0 = (rows[0] + rows[-1] + 1 - size) // 2
    return np.asarray(scratch.crop((x0, y0, x0 + size, y0 + size)), dtype=np.float32) / 255.0


def change_strokes(image: np.ndarray, radius: float) -> np.ndarray:
    """Grey-level dilation (radius > 0) or erosion (radius < 0) by a disc of |radius| pixels: every stroke
    grows or shrinks by about |radius| on each side. image: (H, W)."""
    if radius == 0:
        return image
    combine = np.maximum if radius > 0 else np.minimum
    reach = math.floor(abs(radius))
    height, width = image.shape
    padded = np.pad(image, reach)
    out = image
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dy * dy + dx * dx <= radius * radius:
                out = combine(out, padded[reach + dy : reach + dy + height, reach + dx : reach + dx + width])
    return out


def digit_sprites(heights: np.ndarray, rotations: np.ndarray, changes: np.ndarray, size: int) -> np.ndarray:
    """Every (digit, height, rotation, stroke change) as a size x size grey sprite centred on the point
    (size/2, size/2).

    heights: (S,) px of the digit "0"; rotations: (R,) degrees, counter-clockwise on screen; changes: (T,)
    px added to the stroke width at the largest height (negative thins), in proportion at the others;
    the disc's radius counts whole supersampled pixels, so changes come in steps of 2 / SUPERSAMPLE px.
    Returns (10, S, R, T, size, size) float32 in [0, 1].
    """
    tallest = float(np.max(heights))
    big = size * SUPERSAMPLE  # the sprite at supersampled resolution
    # The canvas must hold the window that shrinks onto the sprite at the smallest height.
    canvas = 2 * math.ceil(big * tallest / float(np.min(heights)) / 2)
    font = _font(font_size_for_height(tallest * SUPERSAMPLE))
    out = np.zeros((10, len(heights), len(rotations), len(changes), size, size), dtype=np.float32)
    for d in range(10):
        glyph = draw_centred(str(d), font, canvas)
        for t, change in enumerate(changes):
            # The stroke width changes by twice the radius, in supersampled pixels at the tallest height.
            changed = Image.fromarray(change_strokes(glyph, float(change) * SUPERSAMPLE / 2))
            for s, height in enumerate(heights):
                half = big / 2 * tallest / float(height)  # the canvas window that becomes the sprite
                window = (canvas / 2 - half, canvas / 2 - half, canvas / 2 + half, canvas / 2 + half)
                shrunk = changed.resize((big, big), Image.Resampling.BOX, box=window)
                for r, angle in enumerate(rotations):
                    turned = shrunk.rotate(float(angle), resample=Image.Resampling.BILINEAR)
                    out[d, s, r, t] = np.asarray(turned.reduce(SUPERSAMPLE), dtype=np.float32)
    return out
