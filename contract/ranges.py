"""The one default range of a latent dim: what ``/traverse`` walks, the page's sliders span and the card draws.

    dim_range(manifest, 3)                 # (low, high) of continuous dim 3
    dim_range(manifest, 3, bound=20.0)     # the same, within the service's latent bound
    default_ranges(manifest, bound=20.0)   # every flat dim's, None for a categorical part's entries

The range covers both the prior N(0, 1) within ``SPAN`` standard deviations, [-3, 3], and the dim's
encodings, its mean of mu over the training data +- ``SPAN`` standard deviations: 99.7% of either lies within
it. A VAE's dims sit near the prior, so its traversals span the prior as the literature's do, and an inactive
dim shows that the decoder ignores it; an autoencoder's codes, which no prior holds, stay in reach too. A dim
without statistics (a GAN's noise, which no encoder reads back) spans the prior alone.
"""

from __future__ import annotations

import math

from contract.manifest import LatentStat, Manifest

SPAN = 3.0  # standard deviations either side, of the prior and of the data


def stat_range(stat: LatentStat | None, bound: float = math.inf) -> tuple[float, float]:
    """The range of a dim with these statistics (None: none), clipped to [-bound, bound]."""
    low, high = -SPAN, SPAN
    if stat is not None:
        low, high = min(low, stat.mean - SPAN * stat.std), max(high, stat.mean + SPAN * stat.std)
    return max(low, -bound), min(high, bound)


def dim_range(manifest: Manifest, dim: int, bound: float = math.inf) -> tuple[float, float]:
    """The range of flat latent dim ``dim``: a continuous dim by its statistics, a noise dim by the prior's.

    A categorical part's entries have no range (they take classes); asking for one is a ValueError.
    """
    layout = manifest.layout
    if not 0 <= dim < layout.size:
        raise ValueError(f"dim: expected one in [0, {layout.size}), got {dim}")
    if layout.continuous <= dim < layout.continuous + layout.classes:
        raise ValueError(f"dim: {dim} is an entry of a categorical part, which takes classes, not a range")
    return stat_range(manifest.latent_stats[dim] if dim < layout.continuous else None, bound)


def default_ranges(manifest: Manifest, bound: float = math.inf) -> list[tuple[float, float] | None]:
    """Every flat latent dim's range, in order; None for the entries of a categorical part."""
    layout = manifest.layout
    categorical = range(layout.continuous, layout.continuous + layout.classes)
    return [None if j in categorical else dim_range(manifest, j, bound) for j in range(layout.size)]
