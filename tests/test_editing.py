"""Reading factors from a latent and editing some of them (contract/editing.py), on a hand-written calibration
and on the shipped models' own calibrations (no networks: the latents are the calibrations' codes)."""

from __future__ import annotations

import numpy as np
import pytest
from service_harness import REPO

from contract.calibration import FactorRequestError, latent_for
from contract.editing import edited, factors_of, group_dims
from contract.manifest import Calibration, FactorCalibration, read_manifest

# posX on two dims (a straight code curve, its codes out of value order on purpose); rotation on one.
CALIBRATION = Calibration(
    base=[0.0, 0.0, 0.0, 5.0],
    factors=[
        FactorCalibration(name="posX", values=[1.0, 0.0, 0.5], dims=[0, 1], codes=[[2.0, 2.0], [0.0, 0.0], [1.0, 1.0]]),
        FactorCalibration(name="rotation", values=[-45.0, 0.0, 45.0], dims=[2], codes=[[-1.0], [0.0], [1.0]]),
    ],
)


def test_a_latent_reads_as_the_values_it_was_made_of() -> None:
    z = latent_for(CALIBRATION, {"posX": 0.75, "rotation": -22.5})
    assert factors_of(CALIBRATION, z) == pytest.approx({"posX": 0.75, "rotation": -22.5})


def test_beyond_the_curve_a_factor_reads_as_its_end_value() -> None:
    z = np.array([0.0, 0.0, 3.0, 5.0], np.float32)  # rotation's code at 3, its 45 degrees at 1
    assert factors_of(CALIBRATION, z)["rotation"] == 45.0


def test_an_edit_moves_the_named_factor_and_keeps_what_lies_off_its_curve() -> None:
    off_curve = np.array([0.75, 0.25, 0.5, 7.0], np.float32)  # posX 0.25, (0.5, 0.5), and (0.25, -0.25) off it
    z = edited(CALIBRATION, off_curve, {"posX": 1.0})
    assert z.tolist() == pytest.approx([2.25, 1.75, 0.5, 7.0])  # posX's code at 1, (0.25, -0.25) kept; the rest stays
    assert factors_of(CALIBRATION, z) == pytest.approx({"posX": 1.0, "rotation": 22.5})
    # On a factor with one dim the edit lands on the asked code, wherever the base was, past the end included.
    past = np.array([0.0, 0.0, 3.0, 5.0], np.float32)
    assert edited(CALIBRATION, past, {"rotation": -45.0})[2] == pytest.approx(-1.0)
    assert edited(CALIBRATION, off_curve, {}).tolist() == off_curve.tolist()


def test_an_edit_refuses_what_synthesize_refuses() -> None:
    z = np.zeros(4, np.float32)
    with pytest.raises(FactorRequestError) as refused:
        edited(CALIBRATION, z, {"rotation": 90.0})
    assert refused.value.factor == "rotation" and refused.value.expected == "a number in [-45, 45]"
    with pytest.raises(FactorRequestError):
        edited(CALIBRATION, z, {"colour": 1.0})


@pytest.mark.parametrize("model", ["digits_joint_vae", "dsprites_joint_vae", "dsprites_beta_vae"])
def test_on_shipped_calibrations_named_factors_change_and_the_others_read_as_before(model: str) -> None:
    calibration = read_manifest(REPO / "models" / model).calibration
    assert calibration is not None
    grouped = {name: group for group in calibration.groups for name in group.factors}
    rng = np.random.default_rng(0)
    for _ in range(50):
        start = {f.name: f.values[rng.integers(len(f.values))] for f in calibration.factors}
        ask = {f.name: f.values[rng.integers(len(f.values))] for f in calibration.factors if rng.random() < 0.5}
        before = factors_of(calibration, latent_for(calibration, start))
        after = factors_of(calibration, edited(calibration, latent_for(calibration, start), ask))
        expected = {name: ask.get(name, before[name]) for name in after}
        for name, value in after.items():
            if name not in grouped:
                assert value == pytest.approx(expected[name], abs=1e-3), (model, name, start, ask, before, after)
        for group in calibration.groups:
            # Cells a group's table does not tell apart (a square turned by 90 degrees) may read as one another:
            # what must hold is the table's offset of what was read.
            dims = group_dims(group, {f.name: f for f in calibration.factors})
            read = latent_for(calibration, {n: after[n] for n in group.factors})[dims]
            wanted = latent_for(calibration, {n: expected[n] for n in group.factors})[dims]
            np.testing.assert_allclose(read, wanted, atol=1e-3, err_msg=f"{model} {start} {ask}")
