"""What a factor judge reads from an image, factor by factor, and how its raw outputs become factor values.

Each factor of a dataset is read one of three ways:
  categorical  class logits (V,), trained with cross-entropy; judged right when the arg-max is the asked class
  linear       one number, the factor's value rescaled to [0, 1] over its range, trained with L1; its error is
               |judged - asked| in the factor's own units times ``per_unit`` (px per position unit)
  periodic     an angle, as (cos k*theta, sin k*theta) for each class of the categorical factor that fixes the
               shape's rotational symmetry k; trained with L1 on the true class's pair; its error is the angle
               difference modulo the symmetry's period 2*pi/k, in degrees

dSprites' orientation is periodic with k = 4 for the square (it looks the same every 90 degrees), 2 for the
ellipse (every 180) and 1 for the heart (mirror-symmetric only, so every angle is distinct). Reading
(cos theta, sin theta) for the square would ask the judge for a quadrant it cannot see; reading
(cos 4*theta, sin 4*theta) asks only for what the image holds. The class that picks the pair and the period is
the one given as ``condition``: the true shape on held-out ground truth, the asked-for shape when judging
``/synthesize`` (an image of the wrong shape has no meaningful angle of the asked shape: its shape error
already counts it).

Pure numpy and pydantic: evaluation runs the judge in onnxruntime without torch.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from training.data.base import FactorDataset

Kind = Literal["categorical", "linear", "periodic"]


class Reading(BaseModel):
    """How a judge reads one factor of a dataset; saved in the judge's ``judge.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Kind
    values: list[float | str] = Field(min_length=2, description="the dataset's grid of this factor")
    unit: str = Field(description="what errors are reported in: accuracy, px, degrees, scale, ...")
    per_unit: float = Field(default=1.0, gt=0, description="``unit``s per unit of the factor's value")
    symmetry_of: str | None = Field(default=None, description="periodic: the categorical factor setting k")
    symmetry: list[int] = Field(default_factory=lambda: [1], description="periodic: k for each of its classes")

    @model_validator(mode="after")
    def _consistent(self) -> Reading:
        if self.kind != "categorical" and any(isinstance(v, str) for v in self.values):
            raise ValueError(f"{self.name}: a {self.kind} reading needs numeric values")
        if self.kind == "periodic" and any(k < 1 for k in self.symmetry):
            raise ValueError(f"{self.name}: symmetry orders must be >= 1, got {self.symmetry}")
        return self

    @property
    def outputs(self) -> int:
        """Width of this reading's output head."""
        if self.kind == "categorical":
            return len(self.values)
        return 1 if self.kind == "linear" else 2 * len(self.symmetry)

    @property
    def grid(self) -> np.ndarray:
        return np.array([float(v) for v in self.values])  # (V,)

    def _periods(self, condition: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(B,) class of the symmetry factor (0 when there is none) and (B,) its order k."""
        which = np.zeros(n, dtype=np.int64) if condition is None else np.asarray(condition, dtype=np.int64)
        return which, np.asarray(self.symmetry, dtype=np.int64)[which]

    def target(self, classes: np.ndarray, condition: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Training target and loss mask for (B,) factor classes: (B, outputs) float32 each.

        Categorical targets hold the class index in column 0 (the mask is unused)."""
        n = len(classes)
        target = np.zeros((n, self.outputs), dtype=np.float32)
        mask = np.ones((n, self.outputs), dtype=np.float32)
        if self.kind == "categorical":
            target[:, 0] = classes
        elif self.kind == "linear":
            grid = self.grid
            target[:, 0] = (grid[classes] - grid.min()) / (grid.max() - grid.min())
        else:
            which, k = self._periods(condition, n)
            angle = k * self.grid[classes]  # (B,)
            mask[:] = 0.0
            rows = np.arange(n)
            target[rows, 2 * which], target[rows, 2 * which + 1] = np.cos(angle), np.sin(angle)
            mask[rows, 2 * which] = mask[rows, 2 * which + 1] = 1.0
        return target, mask

    def value(self, raw: np.ndarray, condition: np.ndarray | None = None) -> np.ndarray:
        """(B, outputs) raw head output -> (B,) judged value: a class index (categorical), the factor's value
        (linear), or an angle in [0, 2*pi/k) radians (periodic)."""
        if self.kind == "categorical":
            return raw.argmax(1)
        if self.kind == "linear":
            grid = self.grid
            return grid.min() + raw[:, 0].astype(np.float64) * (grid.max() - grid.min())
        which, k = self._periods(condition, len(raw))
        rows = np.arange(len(raw))
        angle = np.arctan2(raw[rows, 2 * which + 1], raw[rows, 2 * which]).astype(np.float64)  # k*theta
        return np.mod(angle, 2 * np.pi) / k

    def error(self, raw: np.ndarray, classes: np.ndarray, condition: np.ndarray | None = None) -> np.ndarray:
        """(B,) per image: 1.0 when judged right (categorical), else the absolute error in ``unit``."""
        judged = self.value(raw, condition)
        if self.kind == "categorical":
            return (judged == classes).astype(np.float64)
        asked = self.grid[classes]
        if self.kind == "linear":
            return np.abs(judged - asked) * self.per_unit
        _, k = self._periods(condition, len(raw))
        period = 2 * np.pi / k
        gap = np.mod(judged - asked, period)
        return np.minimum(gap, period - gap) * self.per_unit


def _dsprites(dataset: FactorDataset) -> list[Reading]:
    from training.data.dsprites import POSITION_SPAN
    from training.data.shapes import SHAPES, SYMMETRY

    values = {f.name: list(f.values) for f in dataset.factors}
    return [
        Reading(name="shape", kind="categorical", values=values["shape"], unit="accuracy"),
        Reading(name="scale", kind="linear", values=values["scale"], unit="scale"),
        Reading(
            name="orientation",
            kind="periodic",
            values=values["orientation"],
            unit="degrees",
            per_unit=180 / math.pi,
            symmetry_of="shape",
            symmetry=[SYMMETRY[s] for s in SHAPES],
        ),  # fmt: skip
        Reading(name="posX", kind="linear", values=values["posX"], unit="px", per_unit=POSITION_SPAN),
        Reading(name="posY", kind="linear", values=values["posY"], unit="px", per_unit=POSITION_SPAN),
    ]


def _canvas(dataset: FactorDataset) -> list[Reading]:
    """A digit on the digits canvas: digit, scale, rotation and position (``digits``, ``handwriting``)."""
    from training.data.digits import POSITION_SPAN

    values = {f.name: list(f.values) for f in dataset.factors}
    return [
        Reading(name="digit", kind="categorical", values=values["digit"], unit="accuracy"),
        Reading(name="scale", kind="linear", values=values["scale"], unit="scale"),
        Reading(name="rotation", kind="linear", values=values["rotation"], unit="degrees"),
        Reading(name="posX", kind="linear", values=values["posX"], unit="px", per_unit=POSITION_SPAN),
        Reading(name="posY", kind="linear", values=values["posY"], unit="px", per_unit=POSITION_SPAN),
    ]


def _digits(dataset: FactorDataset) -> list[Reading]:
    values = {f.name: list(f.values) for f in dataset.factors}
    return [*_canvas(dataset), Reading(name="thickness", kind="linear", values=values["thickness"], unit="px")]


_READINGS = {"dsprites": _dsprites, "digits": _digits, "handwriting": _canvas}
JUDGED_DATASETS = tuple(_READINGS)


def readings_for(dataset: FactorDataset) -> list[Reading]:
    """One reading per factor of ``dataset``, in the dataset's factor order."""
    if dataset.name not in _READINGS:
        valid = ", ".join(JUDGED_DATASETS)
        raise ValueError(f"dataset: expected one with a judge, one of {valid}, got {dataset.name!r}")
    readings = _READINGS[dataset.name](dataset)
    assert [r.name for r in readings] == [f.name for f in dataset.factors], "a reading for every factor, in order"
    return readings


def condition_of(readings: list[Reading], reading: Reading, classes: np.ndarray) -> np.ndarray | None:
    """(B,) the classes of the factor fixing ``reading``'s symmetry, from (B, F) classes; None without one."""
    if reading.symmetry_of is None:
        return None
    return classes[:, [r.name for r in readings].index(reading.symmetry_of)]
