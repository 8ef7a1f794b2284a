"""Named factor values -> a latent vector, from an artifact's ``Calibration``.

    latent_for(manifest.calibration, {"shape": "heart", "scale": 0.6, "posX": 0.1})  # -> (d,) float32

Rules, so a caller can predict the vector:
- Start from ``base`` (the mean of mu over the calibration sample). A factor left out of the request keeps
  ``base`` on its dims, i.e. the average over that factor's values.
- A categorical factor (one whose values are strings) takes one of its names exactly.
- A numeric factor takes any number between its smallest and largest calibrated value; between two grid values
  each dim is interpolated linearly, and a grid value gives its calibrated code exactly.
- Each requested factor adds its code's offset from ``base`` on its dims. When two factors share a dim their
  offsets add up, which is exact when the dim is the sum of one function of each factor (for conditional means,
  E[z | a] + E[z | b] - E[z] = f(a) + g(b) for z = f(a) + g(b)); a dim carried by one factor gets its code.

Pure numpy and ``service.artifact``: the service imports this, and training imports it from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from service.artifact import Calibration, FactorCalibration, FactorValue


class FactorRequestError(ValueError):
    """A requested factor name or value the calibration cannot place; names the factor, what it accepts and
    what it received."""

    def __init__(self, factor: str, expected: str, received: object) -> None:
        self.factor = factor
        self.expected = expected
        self.received = received
        super().__init__(f"factor {factor!r}: expected {expected}, received {received!r}")


def is_categorical(factor: FactorCalibration) -> bool:
    return any(isinstance(v, str) for v in factor.values)


def accepted(factor: FactorCalibration) -> str:
    """What ``factor`` accepts, in words, for error messages and API descriptions."""
    if is_categorical(factor):
        return "one of " + ", ".join(repr(v) for v in factor.values)
    numbers = [float(v) for v in factor.values]
    return f"a number in [{min(numbers):g}, {max(numbers):g}]"


def _code(factor: FactorCalibration, value: object) -> np.ndarray:
    """(len(dims),) latent values on the factor's dims for one requested value."""
    codes = np.asarray(factor.codes, dtype=np.float64).reshape(len(factor.values), len(factor.dims))  # (V, k)
    if is_categorical(factor):
        if not isinstance(value, str) or value not in factor.values:
            raise FactorRequestError(factor.name, accepted(factor), value)
        return codes[factor.values.index(value)]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FactorRequestError(factor.name, accepted(factor), value)
    grid = np.array([float(v) for v in factor.values])  # (V,)
    if not grid.min() <= value <= grid.max():
        raise FactorRequestError(factor.name, accepted(factor), value)
    order = np.argsort(grid, kind="stable")
    return np.array([np.interp(float(value), grid[order], codes[order, k]) for k in range(codes.shape[1])])


def latent_for(calibration: Calibration, request: Mapping[str, FactorValue]) -> np.ndarray:
    """(d,) float32 latent vector for named factor values; raises ``FactorRequestError`` on a bad name or value."""
    base = np.asarray(calibration.base, dtype=np.float64)  # (d,)
    by_name = {f.name: f for f in calibration.factors}
    for name in request:
        if name not in by_name:
            valid = ", ".join(repr(n) for n in by_name) or "none (this calibration has no factors)"
            raise FactorRequestError(name, f"a factor name, one of {valid}", name)
    z = base.copy()
    for name, value in request.items():
        factor = by_name[name]
        dims = np.asarray(factor.dims, dtype=np.int64)  # (k,)
        if dims.size and (dims.min() < 0 or dims.max() >= base.size):
            raise ValueError(f"calibration of {name!r} names dims {factor.dims}, outside [0, {base.size})")
        z[dims] += _code(factor, value) - base[dims]
    return z.astype(np.float32)
