"""Checks that need the model or the settings: latent sizes and bounds, item counts, binary shapes."""

from __future__ import annotations

import numpy as np

from service.errors import Invalid, TooLarge, shown
from service.registry import Model
from service.settings import Settings

# How far a categorical part's probabilities may sum from 1: float32 rounding of a caller's softmax, not more.
PROBABILITY_TOLERANCE = 1e-3


def check_count(n: int, field: str, settings: Settings) -> None:
    if n > settings.max_items:
        raise TooLarge(field, f"at most {settings.max_items} items per request", f"{n}")


def check_latents(rows: list[list[float]] | np.ndarray, field: str, model: Model, settings: Settings) -> np.ndarray:
    """Latent vectors -> (B, d) float32, or a rejection naming the first offending row or value.

    Each value must lie within its dim's bounds, which the contract derives from the model's artifact
    (``contract.bounds``): its prior, its encodings and its calibration.
    """
    check_count(len(rows), field, settings)
    d = model.manifest.latent_dim
    for i, row in enumerate(rows if isinstance(rows, list) else ()):
        if len(row) != d:
            raise Invalid(f"{field}[{i}]", f"{d} values (the latent size of {model.name})", f"{len(row)}")
    latents = np.asarray(rows, dtype=np.float32).reshape(len(rows), d)
    check_parts(latents, field, model)  # before the bounds: a part's entry gets the message about parts
    outside = model.bounds.outside(latents)
    if outside is not None:
        i, j = outside
        raise Invalid(f"{field}[{i}][{j}]", model.bounds.described(j), shown(float(latents[i, j])))
    return latents


def check_parts(latents: np.ndarray, field: str, model: Model) -> None:
    """Every categorical part of (B, d) flat latents must hold probabilities: entries >= 0 that sum to 1."""
    for name, where in model.manifest.layout.part_slices().items():
        part = latents[:, where]  # (B, K)
        negative = np.argwhere(part < 0)
        if negative.size:
            i, k = (int(v) for v in negative[0])
            expected = f"a probability >= 0 (class {k} of categorical part {name!r})"
            raise Invalid(f"{field}[{i}][{where.start + k}]", expected, shown(float(part[i, k])))
        sums = part.sum(axis=1, dtype=np.float64)  # (B,)
        off = np.flatnonzero(np.abs(sums - 1) > PROBABILITY_TOLERANCE)
        if off.size:
            i = int(off[0])
            expected = f"probabilities of categorical part {name!r} summing to 1 (within {PROBABILITY_TOLERANCE:g})"
            raise Invalid(f"{field}[{i}][{where.start}:{where.stop}]", expected, f"sum {sums[i]:.6g}")


def _category(entry: object, field: str, name: str, classes: int) -> np.ndarray:
    """One row's value of a categorical part, a class index or K probabilities -> (K,) probabilities."""
    expected = f"a class index in [0, {classes}) or {classes} probabilities summing to 1"
    if isinstance(entry, int) and not isinstance(entry, bool):
        if not 0 <= entry < classes:
            raise Invalid(field, f"{expected} (categorical part {name!r})", shown(entry))
        return np.eye(classes, dtype=np.float32)[entry]
    if not isinstance(entry, list) or len(entry) != classes:
        received = f"{len(entry)} values" if isinstance(entry, list) else shown(entry)
        raise Invalid(field, f"{expected} (categorical part {name!r})", received)
    values = np.asarray(entry, dtype=np.float64)
    bad = np.flatnonzero(~(values >= 0) | ~np.isfinite(values))
    if bad.size:
        k = int(bad[0])
        raise Invalid(f"{field}[{k}]", f"a finite probability >= 0 (categorical part {name!r})", shown(entry[k]))
    if abs(values.sum() - 1) > PROBABILITY_TOLERANCE:
        raise Invalid(
            field, f"probabilities summing to 1 (within {PROBABILITY_TOLERANCE:g})", f"sum {values.sum():.6g}"
        )
    return values.astype(np.float32)


def assemble_latents(
    rows: list[list[float]],
    categorical: dict[str, list[int | list[float]]],
    model: Model,
    settings: Settings,
) -> np.ndarray:
    """Latents given as continuous (and noise) values plus each categorical part's class index or probabilities
    -> (B, d) flat latents in the layout's order, or a rejection naming the field."""
    manifest = model.manifest
    layout = manifest.layout
    parts = [part.name for part in layout.categorical]
    if not parts:
        raise Invalid("categorical", f"no categorical parts ({manifest.name} has none)", shown(list(categorical)))
    for name in categorical:
        if name not in parts:
            raise Invalid(f"categorical.{name}", f"a categorical part of {manifest.name}, one of {parts}", name)
    missing = [name for name in parts if name not in categorical]
    if missing:
        raise Invalid("categorical", f"a value for every categorical part: {parts}", f"none for {missing}")
    check_count(len(rows), "latents", settings)
    width = layout.continuous + layout.noise
    for i, row in enumerate(rows):
        if len(row) != width:
            expected = f"{width} values (the continuous and noise dims of {manifest.name}; parts go in categorical)"
            raise Invalid(f"latents[{i}]", expected, f"{len(row)}")
    by_part = {}
    for part in layout.categorical:
        entries = categorical[part.name]
        if len(entries) != len(rows):
            raise Invalid(f"categorical.{part.name}", f"one entry per latent ({len(rows)})", f"{len(entries)}")
        by_part[part.name] = np.stack(
            [_category(e, f"categorical.{part.name}[{i}]", part.name, part.classes) for i, e in enumerate(entries)]
        )  # (B, K)
    given = np.asarray(rows, dtype=np.float32).reshape(len(rows), width)
    flat = np.concatenate(
        [given[:, : layout.continuous], *by_part.values(), given[:, layout.continuous :]], axis=1
    )  # (B, d)
    return check_latents(flat, "latents", model, settings)


def parse_shape(text: str, field: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise Invalid(field, "a shape like '64,10'", shown(text)) from None
    if any(n < 1 for n in shape):
        raise Invalid(field, "positive sizes", shown(text))
    return shape


def binary_latents(body: bytes, shape_text: str | None, model: Model, settings: Settings) -> np.ndarray:
    """A little-endian float32 body whose shape (B, d) comes from the X-Shape header or ?shape=."""
    manifest = model.manifest
    d = manifest.latent_dim
    if shape_text is None:
        raise Invalid("X-Shape", f"a header (or ?shape=) giving the latents' shape, e.g. '1,{d}'", "none")
    shape = parse_shape(shape_text, "X-Shape")
    if len(shape) != 2 or shape[1] != d:
        raise Invalid("X-Shape", f"(B, {d}) for {manifest.name}", f"{shape}")
    if len(body) != shape[0] * d * 4:
        raise Invalid("body", f"{shape[0] * d * 4} bytes of float32 for shape {shape}", f"{len(body)} bytes")
    return check_latents(np.frombuffer(body, dtype="<f4").reshape(shape), "latents", model, settings)
