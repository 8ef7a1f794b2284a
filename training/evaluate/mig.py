"""Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs", eq. 6).

Pinned to disentanglement_lib's ``discrete_mig``: other repositories compute "MIG" with continuous estimators
or different normalisers, so the result names its definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.evaluate.information import DEFAULT_BINS, factor_entropies, mutual_information_matrix
from training.evaluate.inputs import factor_names, paired

MIG_DEFINITION = (
    "disentanglement_lib discrete_mig: mean over factors k of (I(z_a; v_k) - I(z_b; v_k)) / H(v_k), a and b the "
    "two dims with the highest mutual information, each dim histogram-discretised into equal-width bins"
)


@dataclass(frozen=True)
class MigResult:
    score: float
    gaps: tuple[float, ...]  # per factor, the normalised gap
    top_dims: tuple[int, ...]  # per factor, the dim with the highest mutual information
    names: tuple[str, ...]
    bins: int
    num_points: int

    def as_dict(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "mig": self.score,
            "mig.definition": MIG_DEFINITION,
            "mig.bins": self.bins,
            "mig.num_points": self.num_points,
        }
        for name, gap, dim in zip(self.names, self.gaps, self.top_dims, strict=True):
            out[f"mig.gap.{name}"] = gap
            out[f"mig.dim.{name}"] = dim
        return out


def mig(
    codes: np.ndarray, factors: np.ndarray, bins: int = DEFAULT_BINS, names: Sequence[str] | None = None
) -> MigResult:
    """MIG of (N, d) mean codes against (N, F) factor classes; disentanglement_lib uses N = 10,000, 20 bins.

    A representation with one dim needs no second dim to compare against, so its gap is the top dim's
    information alone.
    """
    z, y = paired(codes, factors)
    info = mutual_information_matrix(z, y, bins)  # (d, F)
    ranked = np.sort(info, axis=0)[::-1]  # (d, F), largest first
    second = ranked[1] if info.shape[0] > 1 else np.zeros(info.shape[1])  # (F,)
    gaps = (ranked[0] - second) / factor_entropies(y)  # (F,)
    return MigResult(
        score=float(np.mean(gaps)),
        gaps=tuple(float(g) for g in gaps),
        top_dims=tuple(int(i) for i in np.argmax(info, axis=0)),
        names=factor_names(names, y.shape[1]),
        bins=bins,
        num_points=z.shape[0],
    )
