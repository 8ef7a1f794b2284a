"""Factor calibration for named synthesis: which latent dims carry each factor, and which latent values give
each of its values. The result is the manifest's ``calibration``; ``contract.calibration.latent_for`` reads it.

Dims are chosen from the (d, F) mutual information matrix (the one MIG uses), normalised per factor by its
entropy: a factor gets its most informative dim, plus every other dim that holds at least ``share`` of that
dim's information (0.5 by default, so a factor split over two dims, as orientation often is, keeps both,
while the weak leakage every factor has into the other dims is left out). Each value's code is the
conditional mean of mu on those dims over the sample points with that value; ``base`` is the mean of mu.

Factors that share a dim are then calibrated jointly (``calibrate_groups``): per-factor codes add up only
when the shared dim is a sum of one function per factor, and a trained encoder rarely is. On the default
dSprites beta-TCVAE, shape, scale and orientation share two dims; adding their separate codes drew the
requested image at IoU 0.70, looking the combination up jointly at 0.84, as good as the model's own
reconstructions of real images (0.85). A group then takes in further factors (``grow_groups``) while its
table stays small: a finer table is a mean over images closer to the one asked for. On the dSprites VAE, shape
and orientation share dims and scale has its own, yet the shared dims' code also moves with scale; averaged
over scale, one in seven requests drew the wrong shape (asked-for shape 0.856); looked up with scale, 0.918.

With a categorical latent part in the layout (JointVAE, InfoGAN) the part is tied to one factor: the factor of
the same name, or else the one its most probable class tells most about. Each value of that factor maps onto
the class whose probability is highest on average over that value's images; its code is that class's one-hot
vector on the part's entries, so the lookup puts a one-hot there. The other factors choose among the
continuous dims only. A continuous factor whose code turns with the class (``class_dependence``) is looked
up jointly with the part's factor: the dSprites JointVAE with its orientation tied as (cos k*theta,
sin k*theta), k the shape's symmetry, has one orientation circle per shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from contract.calibration import group_cells
from contract.manifest import Calibration, FactorCalibration, FactorGroup, FactorSpec, LatentLayout
from training.evaluate.information import (
    DEFAULT_BINS,
    discrete_mutual_information,
    factor_entropies,
    mutual_information_matrix,
)
from training.evaluate.inputs import paired
from training.evaluate.source import CodeSource

DEFAULT_SHARE = 0.5
# A factor whose best dim holds less than this share of its entropy is not carried by the model at all: it
# gets no dims, so a request for it leaves the latent unchanged instead of steering every dim a little.
MIN_INFORMATION = 0.05
# Joint calibration: draws of the other factors averaged per combination, and the largest table worth storing
# (dSprites' shape x scale x orientation is 720 combinations; a group holding posX and posY would be far more).
GROUP_DRAWS = 16
MAX_GROUP_CELLS = 4096
# A group takes in more factors only while its table stays within this many combinations: dSprites' 720 fit,
# digits' digit x rotation x scale (280) does, and a position (x 9 or x 32) would not.
MAX_GROWN_CELLS = 1024


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
    layout: LatentLayout | None = None,
) -> Calibration:
    """Calibration from (N, d) mean codes of (N, F) factor classes; ``factor_specs[j].values[c]`` names class c.

    With a ``layout`` the codes are its flat vectors (mu, then each categorical part's probabilities); without
    one they are all continuous. Every value of every factor must occur in the sample (10,000 uniform draws
    cover dSprites' 40 orientations with near certainty).
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
    layout = layout or LatentLayout(continuous=z.shape[1])
    if layout.size != z.shape[1]:
        raise ValueError(f"codes have {z.shape[1]} dims, the layout {layout.size}")
    normalised = mutual_information_matrix(z, y, bins) / factor_entropies(y)  # (d, F)
    normalised[layout.continuous :] = 0  # continuous factors are read from continuous dims only
    on_part = assign_parts(z, y, factor_specs, layout)
    calibrated = []
    for j, (spec, dims) in enumerate(zip(factor_specs, select_dims(normalised, share, min_information), strict=True)):
        if j in on_part:
            calibrated.append(on_part[j])
            continue
        means = [z[y[:, j] == c][:, dims].mean(axis=0) for c in range(len(spec.values))]  # V x (k,)
        calibrated.append(
            FactorCalibration(
                name=spec.name, values=list(spec.values), dims=dims, codes=[[float(v) for v in m] for m in means]
            )
        )
    return Calibration(base=[float(v) for v in z.mean(axis=0)], factors=calibrated)


def assign_parts(
    z: np.ndarray, y: np.ndarray, factor_specs: Sequence[FactorSpec], layout: LatentLayout
) -> dict[int, FactorCalibration]:
    """Tie each categorical part to one factor: {factor index: its calibration on the part}.

    A part named after a factor takes it; otherwise the factor (not yet taken) whose classes the part's most
    probable class tells most about, normalised by the factor's entropy. Each value's class is the argmax of
    the mean probability over that value's points.
    """
    names = [spec.name for spec in factor_specs]
    entropies = factor_entropies(y)  # (F,)
    tied: dict[int, FactorCalibration] = {}
    for part, where in zip(layout.categorical, layout.part_slices().values(), strict=True):
        probabilities = z[:, where]  # (N, K)
        if part.name in names and names.index(part.name) not in tied:
            j = names.index(part.name)
        else:
            argmax = probabilities.argmax(1)
            scores = [
                -1.0 if k in tied else discrete_mutual_information(argmax, y[:, k]) / entropies[k]
                for k in range(len(names))
            ]
            j = int(np.argmax(scores))
            if scores[j] < MIN_INFORMATION:
                continue  # the part carries no factor: requests leave it at base
        spec = factor_specs[j]
        classes = [int(probabilities[y[:, j] == v].mean(axis=0).argmax()) for v in range(len(spec.values))]
        eye = np.eye(part.classes)
        tied[j] = FactorCalibration(
            name=spec.name,
            values=list(spec.values),
            dims=list(range(where.start, where.stop)),
            codes=[[float(v) for v in eye[c]] for c in classes],
            part=part.name,
            classes=classes,
        )
    return tied


def shared_groups(dims: Sequence[Sequence[int]]) -> list[list[int]]:
    """Per factor its dims -> the factors joined by shared dims (directly or through another factor), as
    sorted factor indices; only groups of two or more factors."""
    parent = list(range(len(dims)))

    def root(j: int) -> int:
        while parent[j] != j:
            j = parent[j]
        return j

    owner: dict[int, int] = {}
    for j, factor_dims in enumerate(dims):
        for dim in factor_dims:
            if dim in owner:
                parent[root(j)] = root(owner[dim])
            else:
                owner[dim] = j
    members: dict[int, list[int]] = {}
    for j in range(len(dims)):
        members.setdefault(root(j), []).append(j)
    return [group for group in members.values() if len(group) > 1]


def class_dependence(
    calibration: Calibration, part_factor: int, factor: int, source: CodeSource, rng: np.random.Generator, draws: int
) -> float:
    """How much of ``factor``'s code, on its dims, moves with the class of ``part_factor`` (a factor read from a
    categorical part) rather than with ``factor``'s own value: the share of the spread of the conditional means
    over (class, value) that lies between the classes at a fixed value. 0 when the code ignores the class.

    Each (class, value) cell is rendered with the same ``draws`` of the other factors (as ``calibrate_groups``)."""
    factors = calibration.factors
    classes_n, values_n = len(factors[part_factor].values), len(factors[factor].values)
    cells = group_cells([classes_n, values_n])  # (cells, 2)
    grid = np.tile(source.sample_factors(draws, rng), (len(cells), 1))  # (cells * draws, F)
    grid[:, [part_factor, factor]] = np.repeat(cells, draws, axis=0)
    dims = factors[factor].dims
    means = source.codes(grid)[:, dims].reshape(classes_n, values_n, draws, len(dims)).mean(axis=2)  # (K, V, k)
    total = ((means - means.mean(axis=(0, 1))) ** 2).sum()
    between = ((means - means.mean(axis=0)) ** 2).sum()
    return float(between / total) if total > 0 else 0.0


def seeded_groups(
    calibration: Calibration, source: CodeSource, rng: np.random.Generator, draws: int = GROUP_DRAWS
) -> list[list[int]]:
    """The groups that ``grow_groups`` starts from: the factors that share dims; and each factor on a
    categorical part with the continuous factors whose code depends on its class (``class_dependence`` at
    least ``DEFAULT_SHARE``).

    A JointVAE's continuous code for one factor may depend on the class: dSprites' orientation tied as
    (cos k*theta, sin k*theta), k the shape's symmetry, is one circle per shape turning at its own rate, so one
    code per orientation averaged over the shapes is right for none of them.
    """
    groups = shared_groups([f.dims for f in calibration.factors])
    taken = {j for group in groups for j in group}
    for j, part_factor in enumerate(calibration.factors):
        if part_factor.part is None or j in taken:
            continue
        dependent = [
            i
            for i, other in enumerate(calibration.factors)
            if other.dims and other.part is None and i not in taken
            and class_dependence(calibration, j, i, source, rng, draws) >= DEFAULT_SHARE
        ]  # fmt: skip
        if dependent:
            groups.append(sorted([j, *dependent]))
            taken.update(groups[-1])
    return groups


def grow_groups(
    groups: Sequence[Sequence[int]], calibration: Calibration, max_cells: int = MAX_GROWN_CELLS
) -> list[list[int]]:
    """Each group of factor indices, grown by the other factors it can take in, fewest values first, while its
    table stays within ``max_cells`` combinations.

    A factor may join when the model carries it on continuous dims (it has dims and no categorical part) and
    no group holds it yet, so groups stay disjoint and each factor is looked up in one place.
    """
    factors = calibration.factors
    taken = {j for group in groups for j in group}
    candidates = sorted(
        (j for j, f in enumerate(factors) if f.dims and f.part is None and j not in taken),
        key=lambda j: (len(factors[j].values), j),
    )
    grown = []
    for group in groups:
        members = list(group)
        cells = math.prod(len(factors[j].values) for j in members)
        for j in candidates:
            if j not in taken and cells * len(factors[j].values) <= max_cells:
                members.append(j)
                taken.add(j)
                cells *= len(factors[j].values)
        grown.append(sorted(members))
    return grown


def calibrate_groups(
    calibration: Calibration,
    source: CodeSource,
    rng: np.random.Generator,
    draws: int = GROUP_DRAWS,
    max_cells: int = MAX_GROUP_CELLS,
) -> Calibration:
    """Add a joint table for every group of factors that share dims, measured on ``source``'s codes.

    Each combination of the group's values is rendered with the same ``draws`` draws of the other factors, and
    its offset is the mean code minus the mean over all combinations. Common draws matter: with fresh draws
    per combination, the other factors' spread (a position dim's, say) lands in every offset as noise of
    std/sqrt(draws), larger than the small shifts a group causes on those dims (it about halved the default
    model's synthesis IoU when this design was chosen); with common draws that noise is the same for every
    combination and cancels. A group with more than ``max_cells`` combinations is left to the additive rule.
    """
    if list(source.names) != [f.name for f in calibration.factors]:
        raise ValueError(f"source factors {list(source.names)} must match the calibration's, in order")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    groups = []
    for members in grow_groups(seeded_groups(calibration, source, rng, draws), calibration):
        sizes = [len(calibration.factors[j].values) for j in members]
        cells = math.prod(sizes)
        if cells > max_cells:
            continue
        combinations = group_cells(sizes)  # (cells, m), in the order the lookup reads the offsets
        classes = np.tile(source.sample_factors(draws, rng), (cells, 1))  # (cells * draws, F)
        classes[:, members] = np.repeat(combinations, draws, axis=0)
        means = source.codes(classes).reshape(cells, draws, -1).mean(axis=1)  # (cells, d)
        offsets = np.round(means - means.mean(axis=0), 5)  # rounded: the manifest stays small
        for j in members:
            if calibration.factors[j].part is not None:  # latent_for sets the part's exact one-hot, not a mean
                offsets[:, calibration.factors[j].dims] = 0.0
        groups.append(FactorGroup(factors=[calibration.factors[j].name for j in members], offsets=offsets.tolist()))
    return calibration.model_copy(update={"groups": groups})
