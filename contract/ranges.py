"""The one default range of a latent dim: what ``/traverse`` walks, the page's sliders span and the card draws.

    dim_range(manifest, 3)        # (low, high) of continuous dim 3
    default_ranges(manifest)      # every flat dim's, None for a categorical part's entries

The range reads the layout's prior. A continuous code drawn from U(low, high) (InfoGAN's) spans [low, high]:
the generator never saw a code outside it. A code with the prior N(0, 1) spans both the prior within ``SPAN``
standard deviations, [-3, 3], and the dim's encodings, its mean of mu over the training data +- ``SPAN``
standard deviations: 99.7% of either lies within it. A VAE's dims sit near the prior, so its traversals span
the prior as the literature's do, and an inactive dim shows that the decoder ignores it; an autoencoder's
codes, which no prior holds, stay in reach too. A noise dim (a GAN's N(0, 1) noise, which no encoder reads
back) spans the prior alone. Every range lies within the dim's ``contract.bounds``.
"""

from __future__ import annotations

from contract.manifest import LatentStat, Manifest

SPAN = 3.0  # standard deviations either side, of the prior and of the data


def stat_range(stat: LatentStat | None) -> tuple[float, float]:
    """The range of a N(0, 1) dim with these statistics (None: none)."""
    low, high = -SPAN, SPAN
    if stat is not None:
        low, high = min(low, stat.mean - SPAN * stat.std), max(high, stat.mean + SPAN * stat.std)
    return low, high


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
    return stat_range(manifest.latent_stats[dim])


def default_ranges(manifest: Manifest) -> list[tuple[float, float] | None]:
    """Every flat latent dim's range, in order; None for the entries of a categorical part."""
    layout = manifest.layout
    categorical = range(layout.continuous, layout.continuous + layout.classes)
    return [None if j in categorical else dim_range(manifest, j) for j in range(layout.size)]
