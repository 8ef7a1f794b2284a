"""Reading an image's factors from its latent, and editing some of them while the rest of the latent stays.

    read = factors_of(calibration, z)                    # {"digit": 3.0, "rotation": 12.4, "posY": 0.61, ...}
    z2 = edited(calibration, z, {"scale": 0.7, "posY": 0.0, "rotation": 30.0})   # (d,) float32

``z`` is a base image's latent in the layout's flat order, as a reconstruction decodes it
(``LatentLayout.reconstruction``: its mu, each categorical part's most probable class one-hot, zero noise).
Rules, so a caller can predict the result:
- Reading inverts the calibration factor by factor. A factor on a categorical part reads as the value whose
  class is most probable. A numeric factor reads as the nearest point to ``z`` (on its dims) of its code curve:
  its codes joined in value order, straight between neighbours, the end segments extended; the value there,
  clipped to the calibrated range, so a value between two grid values reads back as itself. A factor with
  named values reads as the value of the nearest code. A factor group reads as its nearest table row on the
  group's own dims (its factors' dims). A factor no latent dim carries is not read.
- An edit moves ``z`` by what the calibration says the named change is worth: on a numeric factor's dims by
  code(asked) minus that nearest point, on a named-value factor's by code(asked) - code(read), for a group by
  offset(asked, the others as read) - offset(as read) on the group's dims. The rest of ``z`` stays, and with it
  what the calibration does not name (a writer's stroke, slant, width).
- When the edit changes a factor of a group whose values are classes (dSprites' shape), the group's dims go to
  the asked cell itself: the base's place among its own class's rows means nothing among another's.
- A categorical part named by the edit is set to the asked class's code (its one-hot).

Why a shift rather than setting the named factor's dims to code(asked): on a factor with one dim the two are
the same move (the reading puts the base on the curve exactly there; the curve's ends are extended so that a
base past the calibrated range is moved all the way to the asked value). On a factor spanning several dims, or
a group, setting would also replace what the base holds off the curve, which no value of the factor explains,
with the calibration's average. Measured with the factor judges (``python -m training.evaluate.judged_edit
models/digits_joint_vae``; figures in docs/service.md, "Editing an image").

Pure numpy and ``contract``: the service imports this, and training's evaluation from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from contract.calibration import FactorRequestError, _group_offset, _weights, is_categorical, latent_for
from contract.manifest import Calibration, FactorCalibration, FactorGroup, FactorValue


@dataclass(frozen=True)
class _OnCurve:
    value: float  # the value read, within the calibrated range
    code: np.ndarray  # (k,) the nearest point of the code curve, its end segments extended past the ends


def _on_curve(factor: FactorCalibration, point: np.ndarray) -> _OnCurve:
    """Where ``point`` (k,) lies on a numeric factor's code curve: its codes joined in value order, the first and
    last segments extended beyond the ends (so that a base past the calibrated range is not taken for style)."""
    grid = np.array([float(v) for v in factor.values])  # (V,)
    order = np.argsort(grid, kind="stable")
    codes, grid = np.asarray(factor.codes, dtype=np.float64)[order], grid[order]  # (V, k), (V,)
    if len(grid) == 1:
        return _OnCurve(float(grid[0]), codes[0])
    start, step = codes[:-1], codes[1:] - codes[:-1]  # (V-1, k) each segment's start and direction
    length2 = (step**2).sum(axis=1)  # (V-1,)
    t = ((point - start) * step).sum(axis=1) / np.where(length2 > 0, length2, 1.0)  # (V-1,)
    low = np.zeros_like(t)
    high = np.ones_like(t)
    low[0], high[-1] = -np.inf, np.inf
    t = np.clip(t, low, high)
    on = start + t[:, None] * step  # (V-1, k)
    best = int(np.argmin(((on - point) ** 2).sum(axis=1)))
    value = grid[best] + min(max(t[best], 0.0), 1.0) * (grid[best + 1] - grid[best])
    return _OnCurve(float(value), on[best])


def is_named(factor: FactorCalibration) -> bool:
    """A factor whose values are classes, not quantities: named values, or values on a categorical part."""
    return factor.part is not None or is_categorical(factor)


def _read_factor(factor: FactorCalibration, z: np.ndarray) -> FactorValue:
    point = z[np.asarray(factor.dims, dtype=np.int64)]  # (k,)
    if factor.classes is not None:  # the value whose class is the most probable
        return factor.values[int(np.argmax(point[np.asarray(factor.classes)]))]
    if is_categorical(factor):
        codes = np.asarray(factor.codes, dtype=np.float64)  # (V, k)
        return factor.values[int(np.argmin(((codes - point) ** 2).sum(axis=1)))]
    return _on_curve(factor, point).value


def group_dims(group: FactorGroup, by_name: Mapping[str, FactorCalibration]) -> np.ndarray:
    """The continuous dims a group's factors are calibrated on. Its table has entries on every dim, but off
    these they are the sampling noise of a few hundred cell means, not the factors."""
    dims = {d for name in group.factors if by_name[name].part is None for d in by_name[name].dims}
    return np.array(sorted(dims), dtype=np.int64)


def _read_group(
    group: FactorGroup, by_name: Mapping[str, FactorCalibration], z: np.ndarray, base: np.ndarray
) -> dict[str, FactorValue]:
    offsets = group.offset_array  # (cells, d)
    moved = group_dims(group, by_name)
    cell = int(np.argmin(((offsets[:, moved] - (z - base)[moved]) ** 2).sum(axis=1)))
    sizes = tuple(len(by_name[name].values) for name in group.factors)
    index = np.unravel_index(cell, sizes)  # C order, as ``contract.calibration.group_cells``
    return {name: by_name[name].values[int(i)] for name, i in zip(group.factors, index, strict=True)}


def factors_of(calibration: Calibration, z: np.ndarray) -> dict[str, FactorValue]:
    """Every factor some latent dim carries, as read from the flat latent ``z`` (d,), in calibration order."""
    z = np.asarray(z, dtype=np.float64)
    base = np.asarray(calibration.base, dtype=np.float64)
    by_name = {f.name: f for f in calibration.factors}
    read: dict[str, FactorValue] = {}
    grouped = {name for group in calibration.groups for name in group.factors}
    for group in calibration.groups:
        read.update(_read_group(group, by_name, z, base))
    for factor in calibration.factors:
        if factor.name in grouped and factor.part is None:
            continue
        if factor.dims:
            read[factor.name] = _read_factor(factor, z)
    return {f.name: read[f.name] for f in calibration.factors if f.name in read}


def edited(
    calibration: Calibration,
    z: np.ndarray,
    request: Mapping[str, FactorValue],
    read: Mapping[str, FactorValue] | None = None,
) -> np.ndarray:
    """(d,) float32: the flat latent ``z`` with the factors named in ``request`` moved to the asked values (see
    the module's rules); raises ``FactorRequestError`` on a bad name or value, as ``latent_for`` does.
    ``read``: ``factors_of(calibration, z)``, when the caller has it already."""
    latent_for(calibration, request)  # checks every name and value, and the dims, the way /synthesize does
    original = np.asarray(z, dtype=np.float64)  # every change is measured from here, whatever its order
    z = original.copy()
    base = np.asarray(calibration.base, dtype=np.float64)
    by_name = {f.name: f for f in calibration.factors}
    read = factors_of(calibration, original) if read is None else read
    grouped = {name for group in calibration.groups for name in group.factors}
    for name, value in request.items():
        factor = by_name[name]
        if (name in grouped and factor.part is None) or not factor.dims:
            continue
        dims = np.asarray(factor.dims, dtype=np.int64)
        asked = _weights(factor, value) @ np.asarray(factor.codes, dtype=np.float64)  # (k,) the asked value's code
        if factor.part is not None:
            z[dims] = asked
        elif is_categorical(factor):
            z[dims] += asked - _weights(factor, read[name]) @ np.asarray(factor.codes, dtype=np.float64)
        else:
            z[dims] += asked - _on_curve(factor, original[dims]).code
    for group in calibration.groups:
        asked_here = {name: request[name] for name in group.factors if name in request}
        if not asked_here:
            continue
        now = {name: read[name] for name in group.factors}
        moved = group_dims(group, by_name)
        target = _group_offset(group, by_name, {**now, **asked_here})
        renamed = any(is_named(by_name[n]) and asked_here[n] != now[n] for n in asked_here)
        if renamed:  # another class is another region of the table: the base's place in its own means nothing there
            z[moved] = base[moved] + target[moved]
        else:
            z[moved] += target[moved] - _group_offset(group, by_name, now)[moved]
    return z.astype(np.float32)


__all__ = ["FactorRequestError", "edited", "factors_of"]
