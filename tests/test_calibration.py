"""Factor calibration on constructed representations whose dims carry known factors, read back by latent_for."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from contract.calibration import FactorRequestError, latent_for
from contract.manifest import Calibration, FactorCalibration, FactorSpec, FactorValue
from training.evaluate.calibrate import calibrate, calibrate_groups, grow_groups, select_dims, shared_groups
from training.evaluate.source import CodeSource

SHAPES: list[FactorValue] = ["square", "ellipse", "heart"]
SPECS = [
    FactorSpec(name="shape", values=SHAPES),
    FactorSpec(name="scale", values=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
    FactorSpec(name="orientation", values=[2 * math.pi * k / 8 for k in range(8)]),
    FactorSpec(name="posX", values=[k / 9 for k in range(10)]),
]
SHAPE_CODE = np.array([-1.0, 0.3, 2.0])


def grid(repeats: int = 1) -> np.ndarray:
    classes = np.array(list(itertools.product(*[range(len(s.values)) for s in SPECS])), dtype=np.int64)
    return np.tile(classes, (repeats, 1))  # (N, 4)


def values_of(classes: np.ndarray) -> list[np.ndarray]:
    return [np.array(spec.values)[classes[:, j]] for j, spec in enumerate(SPECS)]


def represent(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """dim 0 shape, dims 1 and 4 orientation (cos, sin), dim 2 noise, dim 3 posX, dim 5 scale."""
    _, scale, angle, x = values_of(classes)
    noise = rng.normal(size=len(classes))
    return np.stack(
        [SHAPE_CODE[classes[:, 0]], np.cos(angle), noise, 2 * x - 1, np.sin(angle), -3 * scale.astype(float)], axis=1
    )


def test_calibrate_picks_the_dims_that_carry_each_factor() -> None:
    classes = grid()
    calibration = calibrate(represent(classes, np.random.default_rng(0)), classes, SPECS)
    dims = {f.name: sorted(f.dims) for f in calibration.factors}
    assert dims == {"shape": [0], "scale": [5], "orientation": [1, 4], "posX": [3]}


def test_codes_are_the_conditional_means_and_base_the_mean() -> None:
    classes = grid()
    codes = represent(classes, np.random.default_rng(1))
    calibration = calibrate(codes, classes, SPECS)
    assert calibration.base == pytest.approx(codes.mean(axis=0).tolist(), abs=1e-12)
    for j, factor in enumerate(calibration.factors):
        for c, row in enumerate(factor.codes):
            assert row == pytest.approx(codes[classes[:, j] == c][:, factor.dims].mean(axis=0).tolist(), abs=1e-12)


def test_latent_for_round_trips_every_grid_combination() -> None:
    """For a representation that is a sum of one function per factor, the calibrated latent of a combination is
    the representation's own code for it (the noise dim, which no factor claims, stays at base)."""
    classes = grid()
    codes = represent(classes, np.random.default_rng(2))
    calibration = calibrate(codes, classes, SPECS)
    rng = np.random.default_rng(3)
    for row in rng.choice(len(classes), size=50, replace=False):
        request = {spec.name: spec.values[classes[row, j]] for j, spec in enumerate(SPECS)}
        z = latent_for(calibration, request)
        expected = codes[row].copy()
        expected[2] = calibration.base[2]
        assert z == pytest.approx(expected, abs=1e-6)


def test_two_factors_on_one_dim_round_trip_through_their_offsets() -> None:
    classes = grid()
    _, scale, _, x = values_of(classes)
    codes = np.stack([SHAPE_CODE[classes[:, 0]] + 4 * scale.astype(float), x.astype(float)], axis=1)  # (N, 2)
    calibration = calibrate(codes, classes, SPECS)
    dims = {f.name: f.dims for f in calibration.factors}
    assert dims["shape"] == [0] and dims["scale"] == [0]
    for shape, size in itertools.product(range(3), range(6)):
        z = latent_for(calibration, {"shape": SHAPES[shape], "scale": SPECS[1].values[size]})
        assert z[0] == pytest.approx(SHAPE_CODE[shape] + 4 * float(SPECS[1].values[size]), abs=1e-5)


def test_select_dims_keeps_dims_with_at_least_the_share_of_the_top() -> None:
    normalised = np.array([[0.9, 0.1], [0.5, 0.2], [0.4, 0.0]])
    assert select_dims(normalised, share=0.5) == [[0, 1], [1, 0]]
    assert select_dims(normalised, share=1.0) == [[0], [1]]


def test_a_factor_no_dim_carries_gets_no_dims() -> None:
    """Orientation in a model that ignores it: steering every dim by a sliver would only add noise."""
    normalised = np.array([[0.9, 0.01], [0.1, 0.02], [0.0, 0.015]])
    assert select_dims(normalised) == [[0], []]


def test_bad_requests_list_the_valid_names_and_ranges() -> None:
    classes = grid()
    calibration = calibrate(represent(classes, np.random.default_rng(4)), classes, SPECS)
    with pytest.raises(FactorRequestError, match="'shape', 'scale', 'orientation', 'posX'"):
        latent_for(calibration, {"colour": "red"})
    with pytest.raises(FactorRequestError, match="expected one of 'square', 'ellipse', 'heart', received 'star'"):
        latent_for(calibration, {"shape": "star"})
    with pytest.raises(FactorRequestError, match=r"'scale': expected a number in \[0.5, 1\], received 1.2"):
        latent_for(calibration, {"scale": 1.2})


def test_calibrate_rejects_inconsistent_input_naming_the_field() -> None:
    classes = grid()
    codes = represent(classes, np.random.default_rng(5))
    with pytest.raises(ValueError, match=r"one entry per factor column \(4\), got 3"):
        calibrate(codes, classes, SPECS[:3])
    narrow = [SPECS[0], FactorSpec(name="scale", values=[0.5, 0.6]), *SPECS[2:]]
    with pytest.raises(ValueError, match=r"'scale'\) must hold classes in \[0, 2\), got class 5"):
        calibrate(codes, classes, narrow)
    without_heart = classes[:, 0] != 2
    with pytest.raises(ValueError, match=r"'shape' has no sample points for values \['heart'\]"):
        calibrate(codes[without_heart], classes[without_heart], SPECS)


def test_shared_groups_join_factors_through_any_chain_of_shared_dims() -> None:
    assert shared_groups([[0], [0, 1], [2], [1], [3]]) == [[0, 1, 3]]
    assert shared_groups([[0], [1], []]) == []


def interacting(classes: np.ndarray) -> np.ndarray:
    """dim 0: shape times scale (not a sum of one function of each, so per-factor codes cannot add up to it),
    dim 1: posX, dim 2: orientation (cos)."""
    shape_code, (_, scale, angle, x) = SHAPE_CODE[classes[:, 0]], values_of(classes)
    return np.stack([shape_code * scale.astype(float), 2 * x - 1, np.cos(angle)], axis=1)


def test_factors_sharing_a_dim_are_looked_up_jointly_and_round_trip() -> None:
    classes = grid()
    additive = calibrate(interacting(classes), classes, SPECS)
    assert {f.name: f.dims for f in additive.factors}["scale"] == [0]
    source = CodeSource.from_function([len(s.values) for s in SPECS], interacting, [s.name for s in SPECS])
    joint = calibrate_groups(additive, source, np.random.default_rng(0), draws=4)
    # shape and scale share dim 0; orientation (8 values) joins their table, posX (10) would make it too big
    assert [g.factors for g in joint.groups] == [["shape", "scale", "orientation"]]
    worst_additive = 0.0
    for row in grid()[::7]:
        request = {spec.name: spec.values[row[j]] for j, spec in enumerate(SPECS)}
        expected = interacting(row[None])[0]
        assert latent_for(joint, request) == pytest.approx(expected, abs=1e-4)
        worst_additive = max(worst_additive, abs(latent_for(additive, request)[0] - expected[0]))
    assert worst_additive > 0.3  # what the group is for: the sum of the two codes misses the product (by 0.39)


def test_group_offsets_leave_dims_no_grouped_factor_moves_exactly_alone() -> None:
    """Every combination sees the same draws of the other factors, so posX's spread on dim 1 cancels instead of
    landing in the offsets as noise; a request for shape alone draws it at a typical scale, the same for every
    shape: one of the two grid values (0.7, 0.8) nearest the mean scale, 0.75."""
    classes = grid()
    source = CodeSource.from_function([len(s.values) for s in SPECS], interacting, [s.name for s in SPECS])
    joint = calibrate_groups(calibrate(interacting(classes), classes, SPECS), source, np.random.default_rng(1), 2)
    offsets = np.array(joint.groups[0].offsets)  # (3 * 6 * 8, 3)
    assert offsets.shape == (144, 3) and np.abs(offsets[:, 1]).max() == 0.0
    scales = {round(float(latent_for(joint, {"shape": shape})[0]) / SHAPE_CODE[c], 3) for c, shape in enumerate(SHAPES)}
    assert len(scales) == 1 and scales <= {0.7, 0.8}


def factor(name: str, values: int, dims: list[int], part: str | None = None) -> FactorCalibration:
    return FactorCalibration(
        name=name, values=list(range(values)), dims=dims, codes=[[0.0] * len(dims)] * values, part=part,
        classes=list(range(values)) if part else None,
    )  # fmt: skip


def test_groups_grow_by_the_carried_factors_with_fewest_values_while_the_table_stays_small() -> None:
    calibration = Calibration(
        base=[0.0] * 14,
        factors=[
            factor("shape", 3, [0, 1]), factor("orientation", 40, [0, 1]), factor("scale", 6, [2]),
            factor("posX", 32, [3]), factor("stroke", 4, []), factor("digit", 10, list(range(4, 14)), part="digit"),
        ],
    )  # fmt: skip
    # scale joins (3 * 40 * 6 = 720 combinations); posX would make 23,040; stroke is not carried by any dim and
    # a factor on a categorical part is looked up there
    assert grow_groups([[0, 1]], calibration) == [[0, 1, 2]]
    assert grow_groups([[0, 1]], calibration, max_cells=719) == [[0, 1]]
    assert grow_groups([[0, 1]], calibration, max_cells=10**6) == [[0, 1, 2, 3]]
    # groups stay disjoint: a factor one group took in is not offered to the next
    assert grow_groups([[0, 1], [3, 2]], calibration, max_cells=10**6) == [[0, 1], [2, 3]]
    assert grow_groups([], calibration) == []


def test_groups_with_too_many_combinations_stay_additive() -> None:
    classes = grid()
    source = CodeSource.from_function([len(s.values) for s in SPECS], interacting, [s.name for s in SPECS])
    calibration = calibrate(interacting(classes), classes, SPECS)
    assert calibrate_groups(calibration, source, np.random.default_rng(2), max_cells=17).groups == []
    with pytest.raises(ValueError, match="must match the calibration's"):
        calibrate_groups(calibration, CodeSource.from_function([3, 6, 8, 10], interacting), np.random.default_rng(3))
