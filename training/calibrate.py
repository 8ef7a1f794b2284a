"""Factor calibration for named synthesis: which latent dims carry each factor, and which latent values give
each of its values. The result is the manifest's ``calibration``; ``service.calibration.latent_for`` reads it.

Dims are chosen from the (d, F) mutual information matrix (the one MIG uses), normalised per factor by its
entropy: a factor gets its most informative dim, plus every other dim that holds at least ``share`` of that
dim's information (0.5 by default, so a factor split over two dims, as orientation often is, keeps both,
while the weak leakage every factor has into the other dims is left out). Each value's code is the
conditional mean of mu on those dims over the sample points with that value; ``base`` is the mean of mu.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.artifact import Calibration, FactorCalibration, FactorSpec
from training.evaluate.information import DEFAULT_BINS, factor_entropies, mutual_information_matrix
from training.evaluate.inputs import paired

DEFAULT_SHARE = 0.5
# A factor whose best dim holds less than this share of its entropy is not carried by the model at all: it
# gets no dims, so a request for it leaves the latent unchanged instead of steering every dim a little.
MIN_INFORMATION = 0.05


def select_dims(
    normalised_information: np.ndarray, share: float = DEFAULT_SHARE, min_information: float = MIN_INFORMATION
) -> list[list[int]]:
    """(d, F) normalised mutual information -> per factor, its dims, most informative first."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    chosen: list[list[int]] = []
    for column in normalised_information.T:  # (d,) per factor
        order = np.argsort(-column, kind="stable")
        top = column[order[0]]
        if top < min_information:
            chosen.append([])
            continue
        chosen.append([int(i) for i in order if i == order[0] or column[i] >= share * top])
    return chosen


def calibrate(
    codes: np.ndarray,
    factors: np.ndarray,
    factor_specs: Sequence[FactorSpec],
    bins: int = DEFAULT_BINS,
    share: float = DEFAULT_SHARE,
    min_information: float = MIN_INFORMATION,
) -> Calibration:
    """Calibration from (N, d) mean codes of (N, F) factor classes; ``factor_specs[j].values[c]`` names class c.

    Every value of every factor must occur in the sample (10,000 uniform draws cover dSprites' 40
    orientations with near certainty).
    """
    z, y = paired(codes, factors)
    if len(factor_specs) != y.shape[1]:
        raise ValueError(
            f"factor_specs must have one entry per factor column ({y.shape[1]}), "
            f"got {len(factor_specs)}: {[s.name for s in factor_specs]}"
        )
    for j, spec in enumerate(factor_specs):
        counts = np.bincount(y[:, j], minlength=len(spec.values))  # (V,)
        if counts.size > len(spec.values):
            raise ValueError(
                f"factors column {j} ({spec.name!r}) must hold classes in [0, {len(spec.values)}), "
                f"got class {int(y[:, j].max())}"
            )
        missing = [spec.values[c] for c in np.flatnonzero(counts == 0)]
        if missing:
            raise ValueError(f"factor {spec.name!r} has no sample points for values {missing}; sample more points")
    normalised = mutual_information_matrix(z, y, bins) / factor_entropies(y)  # (d, F)
    calibrated = []
    for j, (spec, dims) in enumerate(zip(factor_specs, select_dims(normalised, share, min_information), strict=True)):
        means = [z[y[:, j] == c][:, dims].mean(axis=0) for c in range(len(spec.values))]  # V x (k,)
        calibrated.append(
            FactorCalibration(
                name=spec.name, values=list(spec.values), dims=dims, codes=[[float(v) for v in m] for m in means]
            )
        )
    return Calibration(base=[float(v) for v in z.mean(axis=0)], factors=calibrated)
