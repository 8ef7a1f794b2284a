"""Request and response bodies of the HTTP API.

Requests forbid unknown fields, so a misspelt option is a 422 rather than silently ignored, and are strict,
so that JSON's ``true`` is not taken for the number 1 nor ``0.0`` for ``false``. Limits that
depend on settings or on the model (latent size, item counts, image size) are checked in ``validation.py``
once the model is known. Responses are documented here but written straight to bytes by the routes: for
thousands of floats, pydantic's serialisation would cost more than the inference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from contract.bounds import LatentBounds
from contract.manifest import Calibration, DatasetInfo, FactorCalibration, LatentLayout, LatentStat, Manifest
from contract.ranges import default_ranges

ModelName = str | None
FORM: dict[str, bool] = {"form": True}  # the validation context of multipart form fields
MODEL_FIELD = Field(default=None, description="a loaded model's name; the default model when left out")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())


class ImageOptions(_Request):
    """What every request that sends images says besides them."""

    model: ModelName = MODEL_FIELD
    resize: bool = Field(
        default=False, description="centre-crop and resize images to the model's resolution instead of a 422"
    )

    @classmethod
    def from_form(cls, fields: dict[str, Any]) -> Self:
        """The options of a multipart upload: form fields are text ("true", "3"), so here, and only here, they
        are converted."""
        return cls.model_validate(fields, strict=False, context=FORM)


class EncodeOptions(ImageOptions):
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
    latent: list[list[float]] = Field(
        description="per image, the flat latent its reconstruction decodes (what /decode takes): mu, each "
        "categorical part's most probable class one-hot, zero noise"
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


class EditOptions(ImageOptions):
    """/edit's fields besides its images; in a multipart upload ``factors`` is a form field holding JSON."""

    factors: dict[str, StrictFloat | StrictStr] = Field(
        default_factory=dict,
        description="named factor values to draw the images with, e.g. {'digit': 3, 'scale': 0.7}; the factors "
        "left out keep each image's own values, as the model reads them",
    )

    @field_validator("factors", mode="before")
    @classmethod
    def _json_in_forms(cls, value: Any, info: ValidationInfo) -> Any:
        if info.context is FORM and isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                expected = 'Input should be a JSON object of factor values, e.g. {"digit": 3}'
                raise PydanticCustomError("json_object", expected) from None
        return value


class EditRequest(EditOptions):
    images: list[str | list[Any]] = Field(
        min_length=1,
        description="the base images: base64 PNG/JPEG strings (data: URLs too) or nested float arrays (C, H, W) "
        "in [0, 1]",
    )


class EditResponse(BaseModel):
    model: str
    read: list[dict[str, float | str]] = Field(
        description="per base image, every factor the model carries as it reads the image's latent (within the "
        "calibrated range)"
    )
    probabilities: dict[str, list[list[float]]] | None = Field(
        default=None, description="per categorical part, each base image's class probabilities (as /encode's)"
    )
    base: list[list[float]] = Field(description="per image, its latent: mu and each part's most probable class")
    latents: list[list[float]] = Field(description="per image, the edited latent that was decoded")
    images: list[str] = Field(description="per image, the edit as a base64 PNG")


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
        "span (layout.prior's: U(low, high) itself; N(0, 1)'s [-3, 3] and the dim's mean +- 3 std; without a "
        "prior the dim's mean +- 3 std); null for the entries of a categorical part, which take classes"
    )
    bounds: list[tuple[float, float]] = Field(
        description="per dim of the flat latent, the values /decode, /traverse and /synthesize accept: its prior's "
        "(N(0, 1) within 20 sd, U(low, high)), widened to its encodings' mean +- 6 std and to every latent its "
        "calibration gives; [0, 1] for a categorical part's entries"
    )

    @classmethod
    def of(cls, manifest: Manifest, bounds: LatentBounds, card: Sequence[str] = ()) -> ModelInfo:
        computed = {"active_dims", "card", "calibration", "ranges", "bounds"}
        return cls(
            active_dims=manifest.active_dims,
            card=list(card),
            calibration=CalibrationInfo.of(manifest.calibration) if manifest.calibration else None,
            ranges=default_ranges(manifest),
            bounds=bounds.pairs(),
            **manifest.model_dump(include=set(cls.model_fields) - computed),
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
