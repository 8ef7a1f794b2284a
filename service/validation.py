"""Checks that need the model or the settings: latent sizes and bounds, item counts, binary shapes."""

from __future__ import annotations

import numpy as np

from service.artifact import Manifest
from service.errors import Rejected, shown
from service.settings import Settings


def check_count(n: int, field: str, settings: Settings) -> None:
    if n > settings.max_items:
        raise Rejected(413, field, f"at most {settings.max_items} items per request", f"{n}")


def check_latents(
    rows: list[list[float]] | np.ndarray, field: str, manifest: Manifest, settings: Settings
) -> np.ndarray:
    """Latent vectors -> (B, d) float32, or a rejection naming the first offending row or value."""
    check_count(len(rows), field, settings)
    d = manifest.latent_dim
    for i, row in enumerate(rows if isinstance(rows, list) else ()):
        if len(row) != d:
            raise Rejected(422, f"{field}[{i}]", f"{d} values (the latent size of {manifest.name})", f"{len(row)}")
    latents = np.asarray(rows, dtype=np.float32).reshape(len(rows), d)
    bound = settings.latent_bound
    bad = ~(np.abs(latents) <= bound)  # NaN compares false, so it is caught here too
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise Rejected(422, f"{field}[{i}][{j}]", f"a finite value in [-{bound}, {bound}]", shown(float(latents[i, j])))
    return latents


def parse_shape(text: str, field: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise Rejected(422, field, "a shape like '64,10'", shown(text)) from None
    if any(n < 1 for n in shape):
        raise Rejected(422, field, "positive sizes", shown(text))
    return shape


def binary_latents(body: bytes, shape_text: str | None, manifest: Manifest, settings: Settings) -> np.ndarray:
    """A little-endian float32 body whose shape (B, d) comes from the X-Shape header or ?shape=."""
    d = manifest.latent_dim
    if shape_text is None:
        raise Rejected(422, "X-Shape", f"a header (or ?shape=) giving the latents' shape, e.g. '1,{d}'", "none")
    shape = parse_shape(shape_text, "X-Shape")
    if len(shape) != 2 or shape[1] != d:
        raise Rejected(422, "X-Shape", f"(B, {d}) for {manifest.name}", f"{shape}")
    if len(body) != shape[0] * d * 4:
        raise Rejected(422, "body", f"{shape[0] * d * 4} bytes of float32 for shape {shape}", f"{len(body)} bytes")
    return check_latents(np.frombuffer(body, dtype="<f4").reshape(shape), "latents", manifest, settings)
