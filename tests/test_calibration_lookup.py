"""Named factor values -> latent vector, on a hand-written calibration (the service side; no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.artifact import Calibration, FactorCalibration
from service.calibration import FactorRequestError, latent_for

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
