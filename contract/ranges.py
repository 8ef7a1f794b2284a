"""The one default range of a latent dim: what ``/traverse`` walks, the page's sliders span and the card draws.

    dim_range(manifest, 3)        # (low, high) of continuous dim 3
    default_ranges(manifest)      # every flat dim's, None for a categorical part's entries
    centre(manifest)              # (d,) the latent at the middle of every range: /traverse's default base

The range reads the layout's prior. A continuous code drawn from U(low, high) (InfoGAN's) spans [low, high]:
the generator never saw a code outside it. A code with the prior N(0, 1) spans both the prior within ``SPAN``
standard deviations, [-3, 3], and the dim's encodings, its mean of mu over the training data +- ``SPAN``
standard deviations: 99.7% of either lies within it. A VAE's dims sit near the prior, so its traversals span
the prior as the literature's do, and an inactive dim shows that the decoder ignores it; an autoencoder's
codes stay in reach too (an autoencoder whose manifest says it has no prior spans its encodings alone). A
noise dim (a GAN's N(0, 1) noise, which no encoder reads back) spans the prior alone. Every range lies within
the dim's ``contract.bounds``.
"""

from __future__ import annotations

import numpy as np

from contract.manifest import LatentStat, Manifest

SPAN = 3.0  # standard deviations either side, of the prior and of the data


def stat_range(stat: LatentStat | None) -> tuple[float, float]:
    """The range of a N(0, 1) dim with these statistics (None: none)."""
    low, high = -SPAN, SPAN
    if stat is not None:
        low, high = min(low, stat.mean - SPAN * stat.std), max(high, stat.mean + SPAN * stat.std)
    return low, high


def encoded_range(stat: LatentStat) -> tuple[float, float]:
    """The range of a dim without a prior: its encodings'."""
    return stat.mean - SPAN * stat.std, stat.mean + SPAN * stat.std


def dim_range(manifest: Manifest, dim: int) -> tuple[float, float]:
    """The range of flat latent dim ``dim``: a continuous dim by its prior (and statistics), a noise dim by N(0, 1).

    A categorical part's entries have no range (they take classes); asking for one is a ValueError.
    """
    layout = manifest.layout
    if not 0 <= dim < layout.size:
        raise ValueError(f"dim: expected one in [0, {layout.size}), got {dim}")
    if layout.continuous <= dim < layout.continuous + layout.classes:
        raise ValueError(f"dim: {dim} is an entry of a categorical part, which takes classes, not a range")
    if dim >= layout.continuous:
        return stat_range(None)
    if layout.prior.kind == "uniform":
        return layout.prior.low, layout.prior.high
    if layout.prior.kind == "none":
        return encoded_range(manifest.latent_stats[dim])
    return stat_range(manifest.latent_stats[dim])


def default_ranges(manifest: Manifest) -> list[tuple[float, float] | None]:
    """Every flat latent dim's range, in order; None for the entries of a categorical part."""
    layout = manifest.layout
    categorical = range(layout.continuous, layout.continuous + layout.classes)
    return [None if j in categorical else dim_range(manifest, j) for j in range(layout.size)]


def centre(manifest: Manifest) -> np.ndarray:
    """(d,) float32: the prior's mean on continuous and noise dims (a dim without a prior: its encodings' mean),
    class 0 of each categorical part."""
    layout = manifest.layout
    prior = layout.prior
    if prior.kind == "none":
        continuous = np.array([[s.mean for s in manifest.latent_stats]], dtype=np.float32)  # (1, c)
    else:
        middle = 0.0 if prior.kind == "normal" else (prior.low + prior.high) / 2
        continuous = np.full((1, layout.continuous), middle, dtype=np.float32)
    first = np.zeros((1, layout.classes), dtype=np.float32)
    for where in layout.probability_slices().values():
        first[0, where.start] = 1.0
    return layout.flat(continuous, first)[0]
