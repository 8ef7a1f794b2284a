"""Request and response bodies of the HTTP API.

Requests forbid unknown fields, so a misspelt option is a 422 rather than silently ignored, and are strict,
so that JSON's ``true`` is not taken for the number 1 nor ``0.0`` for ``false``. Limits that
depend on settings or on the model (latent size, item counts, image size) are checked in ``validation.py``
once the model is known. Responses are documented here but written straight to bytes by the routes: for
thousands of floats, pydantic's serialisation would cost more than the inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.manifest import Calibration, DatasetInfo, FactorCalibration, LatentLayout, LatentStat, Manifest
from contract.ranges import default_ranges

ModelName = str | None
MODEL_FIELD = Field(default=None, description="a loaded model's name; the default model when left out")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())


class EncodeOptions(_Request):
    model: ModelName = MODEL_FIELD
    resize: bool = Field(
        default=False, description="centre-crop and resize images to the model's resolution instead of a 422"
    )
    sample: bool = Field(
        default=False,
        description="also return z ~ q(z|x): N(mu, exp(logvar)), and for each categorical part the one-hot of a "
        "class drawn from its probabilities, as one flat latent in the layout's order",
    )
    seed: int | None = Field(default=None, ge=0, description="makes the z samples reproducible")


class EncodeRequest(EncodeOptions):
    images: list[str | list[Any]] = Field(
        min_length=1,
        description="base64 PNG/JPEG strings (data: URLs too) or nested float arrays (C, H, W) in [0, 1]",
    )


class EncodeResponse(BaseModel):
    model: str
    mu: list[list[float]]
    logvar: list[list[float]]
    probabilities: dict[str, list[list[float]]] | None = Field(
        default=None, description="per categorical part, each image's class probabilities (models with parts only)"
    )
    z: list[list[float]] | None = None


class DecodeRequest(_Request):
    model: ModelName = MODEL_FIELD
    latents: list[list[float]] = Field(
        min_length=1,
        description="one vector per image: the model's flat latent (latent_dim values, each categorical part's "
        "entries summing to 1), or only its continuous and noise values when `categorical` gives the parts",
    )
    categorical: dict[str, list[int | list[float]]] | None = Field(
        default=None,
        description="per categorical part, one entry per latent: a class index or the class probabilities",
    )
    format: Literal["png", "array"] = Field(default="png", description="base64 PNGs or (C, H, W) float arrays")


class DecodeResponse(BaseModel):
    model: str
    images: list[str] | list[list[list[list[float]]]]


class TraverseRequest(_Request):
    model: ModelName = MODEL_FIELD
    latent: list[float] | None = Field(default=None, description="the base latent; else `image`, else the prior")
    image: str | None = Field(default=None, description="a base64 PNG/JPEG whose encoding (mu) is the base")
    resize: bool = Field(default=False, description="centre-crop and resize `image` to the model's resolution")
    dims: list[int] | None = Field(default=None, min_length=1, description="default: the active dims by KL")
    part: str | None = Field(
        default=None, description="a categorical part to walk through its classes instead of dims (one column each)"
    )
    range: tuple[float, float] | None = Field(
        default=None, description="default per dim: its entry in /models/{name} `ranges`"
    )
    steps: int = Field(default=7, ge=2, description="columns of the grid")
    format: Literal["grid", "frames", "gif"] = Field(
        default="grid", description="one PNG (rows = dims, columns = steps), base64 frames as JSON, or a GIF"
    )


class TraverseFrames(BaseModel):
    model: str
    base: list[float]
    dims: list[int]
    part: str | None = Field(default=None, description="the categorical part walked, if any; values are its classes")
    values: list[list[float]] = Field(description="per dim, the value at each step")
    frames: list[list[str]] = Field(description="per dim, a base64 PNG at each step")


class SynthesizeRequest(_Request):
    model: ModelName = MODEL_FIELD
    factors: dict[str, float | str] = Field(description="named factor values, e.g. {'shape': 'heart'}")


class SynthesizeResponse(BaseModel):
    model: str
    latent: list[float]
    image: str = Field(description="base64 PNG")


class CalibrationInfo(BaseModel):
    """A model's calibration as the API shows it. The joint tables of factor groups (hundreds of rows each,
    read only by /synthesize) are left out; which factors are grouped stays."""

    base: list[float]
    factors: list[FactorCalibration]
    groups: list[list[str]] = Field(description="factors calibrated jointly because they share latent dims")
    agreement: dict[str, float]
    recovery: dict[str, float]

    @classmethod
    def of(cls, calibration: Calibration) -> CalibrationInfo:
        return cls(
            groups=[group.factors for group in calibration.groups],
            **calibration.model_dump(exclude={"groups"}),
        )


class ModelInfo(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str
    objective: str
    architecture: str
    likelihood: str
    dataset: DatasetInfo
    latent_dim: int
    layout: LatentLayout
    image_shape: tuple[int, int, int]
    active_dims: list[int]
    latent_stats: list[LatentStat]
    calibration: CalibrationInfo | None
    metrics: dict[str, float | int | str]
    hyperparameters: dict[str, str | int | float | bool]
    created_at: datetime
    card: list[str] = Field(description="model card pictures, served at /models/{name}/card/{file}")
    ranges: list[tuple[float, float] | None] = Field(
        description="per dim of the flat latent, its default range: what /traverse walks and the page's sliders "
        "span (the prior's [-3, 3] and the dim's mean +- 3 std, within the latent bound); null for the entries "
        "of a categorical part, which take classes"
    )

    @classmethod
    def of(cls, manifest: Manifest, bound: float, card: Sequence[str] = ()) -> ModelInfo:
        return cls(
            active_dims=manifest.active_dims,
            card=list(card),
            calibration=CalibrationInfo.of(manifest.calibration) if manifest.calibration else None,
            ranges=default_ranges(manifest, bound),
            **manifest.model_dump(include=set(cls.model_fields) - {"active_dims", "card", "calibration", "ranges"}),
        )


class BrokenInfo(BaseModel):
    folder: str
    error: str


class ModelHealth(BaseModel):
    status: Literal["ready", "degraded"] = Field(
        description="degraded: a network keeps failing, or the files on disk went bad (it serves from memory)"
    )
    problem: str | None = Field(description="what is wrong, when degraded")

    @classmethod
    def of(cls, problem: str | None) -> ModelHealth:
        return cls(status="ready" if problem is None else "degraded", problem=problem)


class ModelList(BaseModel):
    default: str | None
    models: list[ModelInfo]
    broken: list[BrokenInfo] = Field(description="artifact folders skipped at start-up, with the reason")
    health: dict[str, ModelHealth] = Field(
        description="per loaded model; one degraded model never makes the service unready (/readyz)"
    )
