"""Named factor values -> a latent vector, from an artifact's ``Calibration``.

    latent_for(manifest.calibration, {"shape": "heart", "scale": 0.6, "posX": 0.1})  # -> (d,) float32

Rules, so a caller can predict the vector:
- Start from ``base`` (the mean of mu over the calibration sample). A factor left out of the request keeps
  ``base`` on its dims, i.e. the average over that factor's values.
- A categorical factor (one whose values are strings) takes one of its names exactly.
- A numeric factor takes any number between its smallest and largest calibrated value; between two grid values
  each dim is interpolated linearly, and a grid value gives its calibrated code exactly.
- An ungrouped factor adds its code's offset from ``base`` on its dims. When two such factors share a dim their
  offsets add up, which is exact when the dim is the sum of one function of each factor (for conditional means,
  E[z | a] + E[z | b] - E[z] = f(a) + g(b) for z = f(a) + g(b)).
- Factors of a group (``calibration.groups``: factors that share dims, e.g. shape, scale and orientation all
  on two dims) are looked up jointly: the group adds the offset of the requested combination, interpolated like
  a single factor along each numeric factor. A grouped factor left out of the request takes its typical value:
  the one whose rows, averaged over the rest of the table, lie nearest the table's mean. Averaged over its
  values instead, a factor whose codes lie on a circle (dSprites' orientation, on the two dims it shares with
  shape) gave the middle of the circle, which draws a round blob for every shape. A group none of whose
  factors is requested adds nothing.
- A factor read from a categorical part sets that part to its class's one-hot code, grouped or not (a group's
  offsets are zero on the part's entries).

Pure numpy and ``contract.manifest``: the service imports this, and training imports it from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from contract.manifest import Calibration, FactorCalibration, FactorGroup, FactorValue


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


def _weights(factor: FactorCalibration, value: object) -> np.ndarray:
    """(V,) weights over the factor's calibrated values that a requested value stands for: one value exactly,
    or two neighbours of a numeric grid, weighted for linear interpolation."""
    if is_categorical(factor):
        if not isinstance(value, str) or value not in factor.values:
            raise FactorRequestError(factor.name, accepted(factor), value)
        return np.eye(len(factor.values))[factor.values.index(value)]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FactorRequestError(factor.name, accepted(factor), value)
    grid = np.array([float(v) for v in factor.values])  # (V,)
    if not grid.min() <= value <= grid.max():
        raise FactorRequestError(factor.name, accepted(factor), value)
    order = np.argsort(grid, kind="stable")
    ordered = grid[order]
    upper = int(np.searchsorted(ordered, value))  # the first grid value >= value
    weights = np.zeros(grid.size)
    if ordered[upper] == value:
        weights[order[upper]] = 1.0
    else:
        lower = upper - 1
        t = (value - ordered[lower]) / (ordered[upper] - ordered[lower])
        weights[order[lower]], weights[order[upper]] = 1.0 - t, t
    return weights


def group_cells(sizes: Sequence[int]) -> np.ndarray:
    """(cells, m) int64: the value index of each of a group's m factors, for each row of its ``offsets``.

    C order, the last factor's value changing fastest: ``training/calibrate.py`` writes the rows in this order
    and ``latent_for`` reads them back by reshaping the table to (V1, ..., Vm, d), which assumes it.
    """
    return np.indices(tuple(sizes), dtype=np.int64).reshape(len(sizes), -1).T


def _group_offset(
    group: FactorGroup, by_name: Mapping[str, FactorCalibration], request: Mapping[str, FactorValue]
) -> np.ndarray:
    """(d,) offset of a factor group for the requested values of its factors (the typical value of those left out)."""
    sizes = [len(by_name[name].values) for name in group.factors]
    full = group.offset_array.reshape(*sizes, -1)  # (V1, ..., Vm, d): rows in ``group_cells`` order
    table = full
    for axis, name in enumerate(group.factors):  # contract the leading factor axis each time
        if name in request:
            table = np.tensordot(_weights(by_name[name], request[name]), table, axes=(0, 0))
        else:
            if axis not in group._typical:
                group._typical[axis] = typical(full, axis)
            table = table[group._typical[axis]]
    return table


def typical(table: np.ndarray, axis: int) -> int:
    """Index of the value along ``axis`` of a (V1, ..., Vm, d) table whose mean row, over every other axis, lies
    nearest the mean of the whole table (the first such value on a tie)."""
    rows = np.moveaxis(table, axis, 0).reshape(table.shape[axis], -1, table.shape[-1]).mean(axis=1)  # (V, d)
    return int(np.argmin(((rows - rows.mean(axis=0)) ** 2).sum(axis=1)))


def latent_for(calibration: Calibration, request: Mapping[str, FactorValue]) -> np.ndarray:
    """(d,) float32 latent vector for named factor values; raises ``FactorRequestError`` on a bad name or value."""
    base = np.asarray(calibration.base, dtype=np.float64)  # (d,)
    by_name = {f.name: f for f in calibration.factors}
    for name in request:
        if name not in by_name:
            valid = ", ".join(repr(n) for n in by_name) or "none (this calibration has no factors)"
            raise FactorRequestError(name, f"a factor name, one of {valid}", name)
    z = base.copy()
    grouped = {name for group in calibration.groups for name in group.factors}
    for name, value in request.items():
        factor = by_name[name]
        if name in grouped and factor.part is None:
            continue  # looked up, and its value checked, with its group below
        dims = np.asarray(factor.dims, dtype=np.int64)  # (k,)
        if dims.size and (dims.min() < 0 or dims.max() >= base.size):
            raise ValueError(f"calibration of {name!r} names dims {factor.dims}, outside [0, {base.size})")
        codes = np.asarray(factor.codes, dtype=np.float64).reshape(len(factor.values), dims.size)  # (V, k)
        z[dims] += _weights(factor, value) @ codes - base[dims]
    for group in calibration.groups:
        if any(name in request for name in group.factors):
            z += _group_offset(group, by_name, request)
    return z.astype(np.float32)
