"""The manifest of a model artifact and the latent layout its ONNX files follow.

An artifact is a folder holding ``encoder.onnx``, ``decoder.onnx`` and ``manifest.json`` (the file names below);
its ONNX files' tensors are named in ``contract.tensors``. This module owns the manifest's schema; ``training``
imports it to write manifests, ``service`` to read them. An artifact of schema version 1 has no ``layout``: it
reads as all-continuous. A layout without a ``prior`` has N(0, 1) codes.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

SCHEMA_VERSION: Literal[2] = 2  # 2: the latent layout (categorical and noise parts); 1 still loads as all-continuous

# The files of an artifact folder.
MANIFEST_NAME = "manifest.json"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
TRAINING_LOG_FILE = "training_log.jsonl"  # the run's log, which the card's training curves read
NOTES_FILE = "notes.md"  # the recipe: what was tried and what it scored (the card shows it)
CARD_DIR = "card"  # the model card's pictures and card.md, beside the manifest
CARD_FILE = "card.md"  # in CARD_DIR
CARD_PICTURES = ("traversal.png", "reconstructions.png", "mutual_information.png", "training_curves.png")

# The names a manifest may give; training declares its choices with these, not with copies.
Objective = Literal["ae", "vae", "beta_vae", "beta_tcvae", "joint_vae", "infogan"]
Architecture = Literal["conv", "mlp"]
Likelihood = Literal["bernoulli", "gaussian"]
OBJECTIVES: tuple[Objective, ...] = get_args(Objective)
ARCHITECTURES: tuple[Architecture, ...] = get_args(Architecture)
LIKELIHOODS: tuple[Likelihood, ...] = get_args(Likelihood)

ACTIVE_KL_NATS = 0.01
"""A continuous dim is ``active`` when its average KL to the prior exceeds this many nats. A collapsed dim sits
at ~1e-4 nats and one that carries any factor of dSprites at >= 0.1, so the exact value hardly matters."""

FactorValue = float | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FactorSpec(_Strict):
    """One ground-truth factor of variation and the exact values it takes in the dataset."""

    name: str
    values: list[FactorValue] = Field(min_length=1)

    @property
    def categorical(self) -> bool:
        return any(isinstance(v, str) for v in self.values)


class DatasetInfo(_Strict):
    name: str
    factors: list[FactorSpec] = Field(default_factory=list)
    size: int | None = Field(default=None, ge=1, description="number of distinct images, when finite")
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)


class CategoricalPart(_Strict):
    """One categorical latent code: ``classes`` entries of the flat latent vector holding a one-hot vector or a
    probability vector over the classes (JointVAE's relaxed categorical, InfoGAN's categorical code)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    classes: int = Field(ge=2, le=1024)


class ContinuousPrior(_Strict):
    """The prior every continuous code of a model is drawn from: N(0, 1) for the VAE family (and what a manifest
    without one means), U(low, high) for InfoGAN's continuous codes, none for a plain autoencoder (its codes'
    spread over the data stands in). The traversal range, the bounds the service validates latents against, the
    page's sliders and its random draws are read from it (``low`` and ``high`` only for a uniform prior)."""

    kind: Literal["normal", "uniform", "none"] = "normal"
    low: float = -1.0
    high: float = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> ContinuousPrior:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"prior bounds must be finite with low < high, got [{self.low}, {self.high}]")
        return self


class LatentLayout(_Strict):
    """How the flat latent vector the decoder takes is made of parts, in this order:

        [ continuous (c) | categorical[0] (K_0) | categorical[1] (K_1) | ... | noise (n) ]

    ``continuous`` dims are Gaussian codes (the encoder answers their mu and logvar); each categorical part is a
    one-hot or probability vector over its classes (the encoder answers its probabilities); ``noise`` dims are a
    GAN's incompressible noise, which no encoder reads back (decoded as 0 unless a caller sets them).
    """

    continuous: int = Field(ge=0, le=1024)
    categorical: list[CategoricalPart] = Field(default_factory=list)
    noise: int = Field(default=0, ge=0, le=1024)
    prior: ContinuousPrior = Field(default_factory=ContinuousPrior, description="of the continuous codes")

    @model_validator(mode="after")
    def _valid(self) -> LatentLayout:
        names = [part.name for part in self.categorical]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"categorical part names must be unique, {repeated} repeat")
        if self.size < 1:
            raise ValueError("the layout must hold at least one latent dim")
        return self

    @property
    def classes(self) -> int:
        """Total entries of all categorical parts."""
        return sum(part.classes for part in self.categorical)

    @property
    def size(self) -> int:
        """Width of the flat latent vector: the decoder's input."""
        return self.continuous + self.classes + self.noise

    def part_slices(self) -> dict[str, slice]:
        """Each categorical part's slice of the flat vector, in layout order."""
        slices, start = {}, self.continuous
        for part in self.categorical:
            slices[part.name] = slice(start, start + part.classes)
            start += part.classes
        return slices

    def probability_slices(self) -> dict[str, slice]:
        """Each categorical part's slice of the encoder's (B, k) ``probabilities`` output."""
        c = self.continuous
        return {name: slice(w.start - c, w.stop - c) for name, w in self.part_slices().items()}

    @property
    def noise_slice(self) -> slice:
        return slice(self.continuous + self.classes, self.size)

    def flat(self, continuous: np.ndarray, probabilities: np.ndarray | None = None) -> np.ndarray:
        """(B, c) continuous codes and (B, k) concatenated probabilities -> (B, d) flat latents (noise zero)."""
        continuous = np.asarray(continuous, dtype=np.float32)
        batch = continuous.shape[0]
        if continuous.shape != (batch, self.continuous):
            raise ValueError(f"continuous codes must be (B, {self.continuous}), got {continuous.shape}")
        parts = [continuous]
        if self.classes:
            if probabilities is None or np.shape(probabilities) != (batch, self.classes):
                got = None if probabilities is None else np.shape(probabilities)
                raise ValueError(f"probabilities must be (B, {self.classes}), got {got}")
            parts.append(np.asarray(probabilities, dtype=np.float32))
        parts.append(np.zeros((batch, self.noise), dtype=np.float32))
        return np.concatenate(parts, axis=1)

    def most_probable(self, probabilities: np.ndarray) -> np.ndarray:
        """(B, k) probabilities -> (B, k): the one-hot of each part's most probable class (the first on a tie)."""
        one_hot = np.zeros_like(probabilities, dtype=np.float32)
        for where in self.probability_slices().values():
            one_hot[np.arange(len(one_hot)), where.start + np.argmax(probabilities[:, where], axis=1)] = 1.0
        return one_hot

    def reconstruction(self, mu: np.ndarray, probabilities: np.ndarray | None = None) -> np.ndarray:
        """The encoder's (B, c) mu and (B, k) probabilities -> (B, d): the latent a reconstruction decodes. The
        continuous codes' mean, each part's most probable class one-hot (as the decoder saw near one-hot samples
        in training) and zero noise, which no encoder reads back."""
        return self.flat(mu, None if probabilities is None else self.most_probable(probabilities))


def active(kl: np.ndarray) -> np.ndarray:
    """(c,) average KL per continuous dim, in nats -> (c,) bool: the ``active`` of each dim's ``LatentStat``."""
    values = np.asarray(kl, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"kl must be a 1-D array (c,), got shape {values.shape}")
    return values > ACTIVE_KL_NATS


class LatentStat(_Strict):
    """Statistics of the encoder mean over a sample of the training data, for one latent dimension."""

    index: int = Field(ge=0)
    mean: float
    std: float = Field(ge=0)
    kl: float = Field(ge=0, description="average KL(q(z_j|x) || N(0, 1)) in nats")
    active: bool = Field(description="kl above ACTIVE_KL_NATS (``active``); every code of a model without a KL")


class OnnxFile(_Strict):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class TrainingInfo(_Strict):
    steps: int = Field(ge=0)
    images_seen: int = Field(ge=0)
    wall_time_s: float = Field(ge=0)
    device: str
    precision: str
    final_terms: dict[str, float] = Field(default_factory=dict)


class FactorCalibration(_Strict):
    """How one named factor maps onto the latent space.

    ``dims`` are the latent dimensions that carry the factor (by mutual information); ``codes[i]`` holds, for
    ``values[i]``, the latent values on ``dims`` that produce it (the conditional mean of mu). A factor in one
    of the calibration's ``groups`` is synthesised from the group's table instead; its codes stay as the
    average code of each value.

    A factor read from a categorical latent part names it in ``part``; ``classes[i]`` is the class that
    ``values[i]`` maps onto (the class with the highest mean probability over that value's images), ``dims``
    are the part's entries of the flat latent and each code row is that class's one-hot vector.
    """

    name: str
    values: list[FactorValue] = Field(min_length=1)
    dims: list[int]
    codes: list[list[float]]
    part: str | None = Field(default=None, description="the categorical latent part carrying this factor")
    classes: list[int] | None = Field(default=None, description="per value, its class in ``part``")

    @model_validator(mode="after")
    def _codes_match(self) -> FactorCalibration:
        if len(self.codes) != len(self.values):
            raise ValueError(f"codes has {len(self.codes)} rows, expected one per value ({len(self.values)})")
        for row in self.codes:
            if len(row) != len(self.dims):
                raise ValueError(f"a code row has {len(row)} entries, expected one per dim ({len(self.dims)})")
        if (self.part is None) != (self.classes is None):
            raise ValueError("part and classes come together: a factor on a categorical part names both")
        if self.classes is not None:
            if len(self.classes) != len(self.values):
                raise ValueError(f"classes has {len(self.classes)} entries, expected one per value")
            if any(not 0 <= c < len(self.dims) for c in self.classes):
                raise ValueError(f"classes must lie in [0, {len(self.dims)}), got {self.classes}")
        return self


class FactorGroup(_Strict):
    """Factors that share latent dims, calibrated jointly: one latent offset per combination of their values.

    ``offsets`` has one row per combination, in C order over ``factors`` (the last factor's value changes
    fastest; values in each factor's own calibrated order), and one entry per latent dim: the mean code of
    that combination minus the mean over all combinations. The rows therefore average to zero.
    """

    factors: list[str] = Field(min_length=2)
    offsets: list[list[float]]

    # Per factor axis, the typical value that ``contract.calibration`` picks for a factor left out of a
    # request: found once per table, not on every request.
    _typical: dict[int, int] = PrivateAttr(default_factory=dict)

    @cached_property
    def offset_array(self) -> np.ndarray:
        """(cells, d) ``offsets``, converted once: /synthesize reads the same table on every request."""
        return np.asarray(self.offsets, dtype=np.float64)


class Calibration(_Strict):
    """Turns named factor values into a latent vector: start from ``base``, then add each factor's offset
    (``contract.calibration.latent_for`` states the rules)."""

    base: list[float]
    factors: list[FactorCalibration]
    groups: list[FactorGroup] = Field(
        default_factory=list, description="factors that share dims, calibrated jointly; empty in older manifests"
    )
    agreement: dict[str, float] = Field(default_factory=dict, description="decoded vs ground-truth render")
    recovery: dict[str, float] = Field(default_factory=dict, description="per factor, how often re-encoding finds it")

    @model_validator(mode="after")
    def _groups_match(self) -> Calibration:
        sizes = {f.name: len(f.values) for f in self.factors}
        grouped: set[str] = set()
        for group in self.groups:
            unknown = [name for name in group.factors if name not in sizes]
            if unknown:
                raise ValueError(f"group names factors {unknown} that the calibration does not have: {list(sizes)}")
            if grouped.intersection(group.factors) or len(set(group.factors)) < len(group.factors):
                raise ValueError(f"factor group {group.factors} names a factor twice, or one another group holds")
            grouped.update(group.factors)
            cells = math.prod(sizes[name] for name in group.factors)
            if len(group.offsets) != cells:
                rows = len(group.offsets)
                raise ValueError(f"group {group.factors} has {rows} offset rows, expected {cells}, one per combination")
            if any(len(row) != len(self.base) for row in group.offsets):
                raise ValueError(f"every offset row of group {group.factors} must have {len(self.base)} entries")
        return self


class Manifest(_Strict):
    schema_version: Literal[1, 2] = SCHEMA_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    objective: Objective
    architecture: Architecture
    likelihood: Likelihood
    hyperparameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    dataset: DatasetInfo
    latent_dim: int = Field(ge=1, le=4096, description="the decoder's input width, layout.size")
    layout: LatentLayout = Field(description="the parts of the flat latent; all-continuous in version 1 manifests")
    image_shape: tuple[int, int, int] = Field(description="(C, H, W)")
    latent_stats: list[LatentStat] = Field(description="one per continuous dim (layout.continuous)")
    training: TrainingInfo
    files: dict[Literal["encoder", "decoder"], OnnxFile]
    code_version: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    metrics: dict[str, float | int | str] = Field(default_factory=dict)
    calibration: Calibration | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_layout(cls, data: object) -> object:
        """A manifest written before the layout existed (schema version 1) is all-continuous."""
        if isinstance(data, dict) and "layout" not in data and isinstance(data.get("latent_dim"), int):
            return {**data, "layout": {"continuous": data["latent_dim"]}}
        return data

    @field_validator("image_shape")
    @classmethod
    def _channels(cls, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        c, h, w = shape
        if c not in (1, 3) or h < 1 or w < 1:
            raise ValueError(f"image_shape must be (1 or 3, H, W), got {shape}")
        return shape

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.layout.size != self.latent_dim:
            raise ValueError(f"layout holds {self.layout.size} dims, latent_dim is {self.latent_dim}")
        if len(self.latent_stats) != self.layout.continuous:
            raise ValueError(
                f"latent_stats has {len(self.latent_stats)} entries, expected one per continuous dim "
                f"({self.layout.continuous})"
            )
        if set(self.files) != {"encoder", "decoder"}:
            raise ValueError("files must name both 'encoder' and 'decoder'")
        for stat in self.latent_stats:
            if not all(math.isfinite(v) for v in (stat.mean, stat.std, stat.kl)):
                raise ValueError(f"latent_stats[{stat.index}] holds a non-finite value")
        if self.calibration is not None:
            if len(self.calibration.base) != self.latent_dim:
                raise ValueError("calibration.base must have latent_dim entries")
            for factor in self.calibration.factors:
                if any(not 0 <= d < self.latent_dim for d in factor.dims):
                    raise ValueError(f"calibration of {factor.name!r} names a dim outside [0, {self.latent_dim})")
                if factor.part is not None:
                    where = self.layout.part_slices().get(factor.part)
                    if where is None or factor.dims != list(range(where.start, where.stop)):
                        raise ValueError(
                            f"calibration of {factor.name!r} reads part {factor.part!r}: its dims must be that "
                            "part's entries of the flat latent"
                        )
        return self

    @property
    def active_dims(self) -> list[int]:
        """Active continuous dimensions, most informative (highest KL) first."""
        ranked = sorted(self.latent_stats, key=lambda s: -s.kl)
        return [s.index for s in ranked if s.active]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> Manifest:
    return Manifest.model_validate_json((folder / MANIFEST_NAME).read_text())


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write atomically, so a reader never sees half a manifest. A version 1 manifest (re-evaluated, say) stays
    version 1: its layout is implied, all-continuous, and written out it would be a field version 1 lacks."""
    target = folder / MANIFEST_NAME
    tmp = target.with_suffix(".json.tmp")
    implied = {"layout"} if manifest.schema_version == 1 else None
    tmp.write_text(manifest.model_dump_json(indent=2, exclude=implied) + "\n")
    tmp.replace(target)
    return target
