"""Named factor values -> latent vector, on a hand-written calibration (the service side; no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from contract.calibration import FactorRequestError, group_cells, latent_for
from contract.manifest import Calibration, FactorCalibration, FactorGroup, FactorValue

CALIBRATION = Calibration(
    base=[0.5, 0.0, -1.0, 2.0],
    factors=[
        FactorCalibration(name="shape", values=["square", "ellipse", "heart"], dims=[0], codes=[[1.0], [2.0], [3.0]]),
        # Grid values listed out of order on purpose: interpolation must follow the values, not the rows.
        FactorCalibration(
            name="posX", values=[1.0, 0.0, 0.5], dims=[1, 2], codes=[[4.0, 40.0], [0.0, 0.0], [1.0, 10.0]]
        ),
        FactorCalibration(name="scale", values=[0.5, 1.0], dims=[0], codes=[[0.0], [1.0]]),
    ],
)


def test_grid_values_give_their_codes_and_unrequested_factors_keep_base() -> None:
    assert latent_for(CALIBRATION, {"shape": "heart"}).tolist() == [3.0, 0.0, -1.0, 2.0]
    assert latent_for(CALIBRATION, {"posX": 1.0}).tolist() == [0.5, 4.0, 40.0, 2.0]
    assert latent_for(CALIBRATION, {}).tolist() == CALIBRATION.base
    assert latent_for(CALIBRATION, {"posX": 0.5}).dtype == np.float32


def test_numeric_values_between_grid_points_interpolate_linearly_per_dim() -> None:
    z = latent_for(CALIBRATION, {"posX": 0.25})
    assert z[1:3].tolist() == pytest.approx([0.5, 5.0])
    z = latent_for(CALIBRATION, {"posX": 0.9})
    assert z[1:3].tolist() == pytest.approx([1.0 + 0.8 * 3.0, 10.0 + 0.8 * 30.0])


def test_factors_sharing_a_dim_add_their_offsets_from_base() -> None:
    # shape heart: 3.0 - 0.5 above base; scale 1.0: 1.0 - 0.5 above base -> 0.5 + 2.5 + 0.5.
    assert latent_for(CALIBRATION, {"shape": "heart", "scale": 1})[0] == pytest.approx(3.5)
    assert latent_for(CALIBRATION, {"scale": 0.75})[0] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("request_", "factor", "expected"),
    [
        ({"colour": "red"}, "colour", "a factor name, one of 'shape', 'posX', 'scale'"),
        ({"shape": "star"}, "shape", "one of 'square', 'ellipse', 'heart'"),
        ({"shape": 1}, "shape", "one of 'square', 'ellipse', 'heart'"),
        ({"posX": 1.5}, "posX", "a number in [0, 1]"),
        ({"posX": "0.5"}, "posX", "a number in [0, 1]"),
        ({"posX": True}, "posX", "a number in [0, 1]"),
        ({"posX": math.nan}, "posX", "a number in [0, 1]"),
        ({"scale": 0.1}, "scale", "a number in [0.5, 1]"),
    ],
)
def test_bad_names_and_values_name_the_factor_what_it_accepts_and_what_came(
    request_: dict[str, object], factor: str, expected: str
) -> None:
    received = next(iter(request_.values())) if factor in {"shape", "posX", "scale"} else factor
    with pytest.raises(FactorRequestError) as caught:
        latent_for(CALIBRATION, request_)  # type: ignore[arg-type]
    assert caught.value.factor == factor
    assert caught.value.expected == expected
    assert str(caught.value) == f"factor {factor!r}: expected {expected}, received {received!r}"
    assert isinstance(caught.value, ValueError)


# shape and scale share dim 0 and are grouped: one offset row per (shape, scale), scale changing fastest.
GROUPED = Calibration.model_validate(
    {
        **CALIBRATION.model_dump(),
        "groups": [
            FactorGroup(
                factors=["shape", "scale"],
                offsets=[
                    [-1.0, 0.0, 0.0, 0.0],  # square, 0.5
                    [-3.0, 0.0, 0.0, 0.5],  # square, 1.0
                    [0.0, 0.0, 0.0, 0.0],  # ellipse, 0.5
                    [1.0, 0.0, 0.0, -0.5],  # ellipse, 1.0
                    [1.0, 0.0, 0.0, 0.0],  # heart, 0.5
                    [2.0, 0.0, 0.0, 0.0],  # heart, 1.0
                ],
            )
        ],
    }
)


def test_grouped_factors_take_the_offset_of_their_combination_on_every_dim() -> None:
    assert latent_for(GROUPED, {"shape": "square", "scale": 1.0}).tolist() == [0.5 - 3.0, 0.0, -1.0, 2.5]
    # posX is not grouped: its code still applies on its own dims, next to the group's offset.
    assert latent_for(GROUPED, {"shape": "heart", "scale": 0.5, "posX": 1.0}).tolist() == [1.5, 4.0, 40.0, 2.0]


def test_a_grouped_numeric_factor_interpolates_and_one_left_out_takes_its_typical_value() -> None:
    z = latent_for(GROUPED, {"shape": "square", "scale": 0.75})
    assert z.tolist() == pytest.approx([0.5 - 2.0, 0.0, -1.0, 2.25])
    # shape left out: ellipse, whose rows average (0.5, 0, 0, -0.25), nearest the table's mean (0, 0, 0, 0);
    # square's average is (-2, 0, 0, 0.25) and heart's (1.5, 0, 0, 0)
    assert latent_for(GROUPED, {"scale": 1.0}).tolist() == pytest.approx([0.5 + 1.0, 0.0, -1.0, 2.0 - 0.5])
    # scale left out: both values average to the table's mean over shapes, and the first is taken
    assert latent_for(GROUPED, {"shape": "ellipse"}).tolist() == pytest.approx([0.5, 0.0, -1.0, 2.0])
    assert latent_for(GROUPED, {"posX": 0.0}).tolist() == [0.5, 0.0, 0.0, 2.0]


def test_a_factor_on_a_circle_left_out_takes_a_point_of_the_circle_not_its_middle() -> None:
    """dSprites' shape and orientation share two dims on which orientation draws a circle whose radius is the
    shape: the average over orientations is the centre, where every shape is the same round blob."""
    shapes: list[FactorValue] = ["square", "ellipse", "heart"]
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    radii = [1.0, 2.0, 3.0]
    factors = [
        FactorCalibration(name="shape", values=shapes, dims=[0, 1], codes=[[0.0, 0.0]] * 3),
        FactorCalibration(name="orientation", values=angles.tolist(), dims=[0, 1], codes=[[0.0, 0.0]] * 8),
    ]
    offsets = [[r * np.cos(a), r * np.sin(a)] for r in radii for a in angles]
    group = FactorGroup(factors=["shape", "orientation"], offsets=offsets)
    table = Calibration(base=[0.0, 0.0], factors=factors, groups=[group])
    for shape, radius in zip(shapes, radii, strict=True):
        assert np.hypot(*latent_for(table, {"shape": shape})) == pytest.approx(radius, abs=1e-6)


def test_a_table_written_in_group_cells_order_is_read_back_combination_by_combination() -> None:
    """``training/calibrate.py`` writes a group's rows in ``group_cells`` order; the lookup must read them so."""
    factors = [
        FactorCalibration(name="a", values=["p", "q"], dims=[0], codes=[[0.0], [0.0]]),
        FactorCalibration(name="b", values=[0.0, 1.0, 2.0], dims=[0], codes=[[0.0], [0.0], [0.0]]),
        FactorCalibration(name="c", values=["x", "y"], dims=[0], codes=[[0.0], [0.0]]),
    ]
    cells = group_cells([2, 3, 2])
    assert cells.shape == (12, 3) and cells[:3].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0]]
    # Each row's offset spells its own combination, so reading the wrong row shows.
    offsets = [[100.0 * i + 10.0 * j + k] for i, j, k in cells]
    table = Calibration(base=[0.0], factors=factors, groups=[FactorGroup(factors=["a", "b", "c"], offsets=offsets)])
    for i, j, k in cells:
        request = {"a": factors[0].values[i], "b": factors[1].values[j], "c": factors[2].values[k]}
        assert latent_for(table, request).tolist() == [100.0 * i + 10.0 * j + k]


def test_a_bad_value_of_a_grouped_factor_is_reported_like_any_other() -> None:
    with pytest.raises(FactorRequestError, match=r"'scale': expected a number in \[0.5, 1\], received 2"):
        latent_for(GROUPED, {"shape": "heart", "scale": 2})


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([{"factors": ["shape", "colour"], "offsets": []}], r"factors \['colour'\] that the calibration does not"),
        ([{"factors": ["shape", "scale"], "offsets": [[0.0] * 4] * 5}], "has 5 offset rows, expected 6"),
        ([{"factors": ["shape", "scale"], "offsets": [[0.0] * 3] * 6}], "must have 4 entries"),
        (
            [
                {"factors": ["shape", "scale"], "offsets": [[0.0] * 4] * 6},
                {"factors": ["scale", "posX"], "offsets": []},
            ],
            "names a factor twice, or one another group holds",
        ),
    ],
)
def test_malformed_groups_are_rejected_naming_the_problem(groups: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Calibration.model_validate({**CALIBRATION.model_dump(), "groups": groups})
