"""The bounds a latent must lie within to be decoded, per dim of the flat latent, derived from the artifact.

    bounds = latent_bounds(manifest)
    bounds.low, bounds.high        # (d,) float32 each
    bounds.outside(latents)        # (row, dim) of the first value of (B, d) latents outside them (NaN too), or None

A continuous dim accepts the hull of what the model can meet:
- its prior's draws: U(low, high) itself; N(0, 1) within ``NORMAL_REACH`` standard deviations (a value beyond
  is a mistake, not a draw); nothing for a model without a prior;
- its encoder's codes: their mean over the training data +- ``ENCODED_REACH`` standard deviations. A plain
  autoencoder's codes have no prior to hold them (dsprites_ae's reach -45 and +44; measured on 30,000 images,
  none lies beyond 3.4 sd of its dim's mean), and InfoGAN's Q reads codes up to 0.5 past U(-1, 1);
- its calibration's latents: every vector ``contract.calibration.latent_for`` can give, found exactly as the
  sum of each factor's (and each group's) most negative and most positive offset from ``base`` on the dim.
A noise dim (N(0, 1)) accepts ``NORMAL_REACH`` standard deviations; a categorical part's entry, [0, 1].

Bounds are rounded outwards to float32, so a float32 latent rounded from a float64 one (the calibration's) at an
extreme is still inside. Every range of ``contract.ranges`` lies within them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.manifest import Calibration, Manifest

NORMAL_REACH = 20.0  # standard deviations of N(0, 1) either side
ENCODED_REACH = 6.0  # standard deviations of the encoder's codes either side of their mean


@dataclass(frozen=True)
class LatentBounds:
    low: np.ndarray  # (d,) float32
    high: np.ndarray  # (d,) float32

    def outside(self, latents: np.ndarray) -> tuple[int, int] | None:
        """(B, d) latents -> (row, dim) of the first value outside the bounds or not a number, or None."""
        inside = (latents >= self.low) & (latents <= self.high)  # NaN compares false
        if inside.all():
            return None
        i, j = np.argwhere(~inside)[0]
        return int(i), int(j)

    def described(self, dim: int) -> str:
        """Dim ``dim``'s bounds in words, for error messages."""
        return f"a finite value in [{self.low[dim]}, {self.high[dim]}]"

    def pairs(self) -> list[tuple[float, float]]:
        """Per dim, (low, high) as Python floats."""
        return [(float(lo), float(hi)) for lo, hi in zip(self.low, self.high, strict=True)]


def calibration_reach(calibration: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """(d,) lowest and highest value each dim takes in any latent ``latent_for`` gives.

    A latent is ``base`` plus one offset per requested factor (or group); a factor left out adds nothing, and
    values between grid points interpolate between their offsets, so each dim's extremes are ``base`` plus the
    sum of every factor's and group's most negative (most positive) offset, or 0 where none is.
    """
    base = np.asarray(calibration.base, dtype=np.float64)  # (d,)
    low, high = base.copy(), base.copy()
    grouped = {name for group in calibration.groups for name in group.factors}
    for factor in calibration.factors:
        if factor.name in grouped and factor.part is None:
            continue  # its offsets are its group's
        dims = np.asarray(factor.dims, dtype=np.int64)  # (k,)
        offsets = np.asarray(factor.codes, dtype=np.float64).reshape(len(factor.values), dims.size) - base[dims]
        np.add.at(low, dims, np.minimum(offsets.min(axis=0), 0.0))
        np.add.at(high, dims, np.maximum(offsets.max(axis=0), 0.0))
    for group in calibration.groups:
        low += np.minimum(group.offset_array.min(axis=0), 0.0)
        high += np.maximum(group.offset_array.max(axis=0), 0.0)
    return low, high


def latent_bounds(manifest: Manifest) -> LatentBounds:
    """The bounds of every dim of ``manifest``'s flat latent."""
    layout = manifest.layout
    low = np.full(layout.size, -NORMAL_REACH)
    high = np.full(layout.size, NORMAL_REACH)
    c = layout.continuous
    if layout.prior.kind == "uniform":
        low[:c], high[:c] = layout.prior.low, layout.prior.high
    elif layout.prior.kind == "none":
        low[:c], high[:c] = np.inf, -np.inf  # the encodings and the calibration alone
    mean = np.array([s.mean for s in manifest.latent_stats], dtype=np.float64)  # (c,)
    std = np.array([s.std for s in manifest.latent_stats], dtype=np.float64)
    low[:c] = np.minimum(low[:c], mean - ENCODED_REACH * std)
    high[:c] = np.maximum(high[:c], mean + ENCODED_REACH * std)
    if manifest.calibration is not None:
        reach_low, reach_high = calibration_reach(manifest.calibration)
        low[:c], high[:c] = np.minimum(low[:c], reach_low[:c]), np.maximum(high[:c], reach_high[:c])
    low[c : c + layout.classes], high[c : c + layout.classes] = 0.0, 1.0
    return LatentBounds(_outwards(low, -np.inf), _outwards(high, np.inf))


def _outwards(values: np.ndarray, direction: float) -> np.ndarray:
    """float64 -> the nearest float32 on the outer side (the value itself when float32 holds it exactly)."""
    nearest = values.astype(np.float32)
    inner = nearest < values if direction > 0 else nearest > values
    return np.where(inner, np.nextafter(nearest, np.float32(direction)), nearest)
