"""Finds the artifacts under the model directory, verifies them and loads them into onnxruntime.

Every sub-folder of ``model_dir`` is one artifact. Each is checked on its own (manifest schema, sha256 of
both ONNX files, the networks' input and output shapes, one warm-up run); a folder that fails any check is
recorded with the reason and skipped, so one broken artifact never takes the others down.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ValidationError

from service.artifact import CARD_DIR, MANIFEST_NAME, Manifest, read_manifest, sha256_of
from service.errors import Rejected, shown, validation_body
from service.metrics import Metrics
from service.runtime import Batcher, open_session
from service.settings import Settings

log = logging.getLogger("disentangle.registry")


class ArtifactError(Exception):
    """Why an artifact folder cannot be served."""


@dataclass(frozen=True)
class BrokenArtifact:
    folder: str
    error: str


@dataclass
class Model:
    manifest: Manifest
    folder: Path
    encoder: Batcher
    decoder: Batcher
    card: tuple[str, ...] = ()  # the PNG pictures of the model card (`disentangle-train eval` writes them)

    @property
    def name(self) -> str:
        return self.manifest.name


class Registry:
    def __init__(self, models: list[Model], broken: list[BrokenArtifact], configured_default: str | None) -> None:
        self.models = {m.name: m for m in sorted(models, key=lambda m: m.name)}
        self.broken = broken
        self.configured_default = configured_default
        if configured_default is None:
            self.default = next(iter(self.models), None)
        else:
            self.default = configured_default if configured_default in self.models else None

    @property
    def problem(self) -> str | None:
        """Why the service is not ready, or None when it is."""
        if not self.models:
            return "no model loaded" + (f"; broken: {[b.folder for b in self.broken]}" if self.broken else "")
        if self.default is None:
            return f"the configured default model {self.configured_default!r} is not loaded"
        failing = [why for m in self.models.values() for b in (m.encoder, m.decoder) if (why := b.failing) is not None]
        return "; ".join(failing) if failing else None

    def get(self, name: str | None) -> Model:
        key = name if name is not None else self.default
        if key is not None and key in self.models:
            return self.models[key]
        received = shown(name) if name is not None else f"no model, and the default ({self.problem})"
        raise Rejected(404, "model", f"one of {list(self.models)}", received)

    async def close(self) -> None:
        for model in self.models.values():
            await model.encoder.close()
            await model.decoder.close()


Role = Literal["encoder", "decoder"]
# Each network's role, its input name and the outputs the service reads, in that order.
NETWORKS: tuple[tuple[Role, str, list[str]], ...] = (
    ("encoder", "image", ["mu", "logvar"]),
    ("decoder", "z", ["image"]),
)


def _file(folder: Path, manifest: Manifest, role: Role) -> Path:
    entry = manifest.files[role]
    path = (folder / entry.path).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ArtifactError(f"files.{role}.path {entry.path!r} points outside the artifact folder")
    if not path.is_file():
        raise ArtifactError(f"{entry.path} is missing")
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise ArtifactError(f"{entry.path} has sha256 {actual}, the manifest expects {entry.sha256}")
    return path


def _check_shapes(batcher: Batcher, rows: np.ndarray, expected: list[tuple[int, ...]], what: str) -> None:
    outputs = batcher.run(rows)
    shapes = [tuple(o.shape) for o in outputs]
    if shapes != expected or any(o.dtype != np.float32 for o in outputs):
        raise ArtifactError(f"{what} returned {shapes} {[str(o.dtype) for o in outputs]}, expected float32 {expected}")


def load_model(folder: Path, settings: Settings, pool: Executor, metrics: Metrics) -> Model:
    if not (folder / MANIFEST_NAME).is_file():
        raise ArtifactError(f"{MANIFEST_NAME} is missing")
    try:
        manifest = read_manifest(folder)
    except ValidationError as error:
        raise ArtifactError(f"{MANIFEST_NAME} is invalid: {validation_body(error.errors())['detail']}") from None
    batchers = {}
    for role, input_name, outputs in NETWORKS:
        session = open_session(_file(folder, manifest, role), settings)
        inputs = [i.name for i in session.get_inputs()]
        names = [o.name for o in session.get_outputs()]
        if inputs != [input_name] or not set(outputs) <= set(names):
            raise ArtifactError(f"{role} has inputs {inputs} and outputs {names}, expected {input_name} -> {outputs}")
        batchers[role] = Batcher(manifest.name, role, session, outputs, pool, metrics, settings)
    d, shape = manifest.latent_dim, manifest.image_shape
    # A run with a batch of 2 proves the batch axis is dynamic and the shapes match the manifest.
    _check_shapes(batchers["encoder"], np.zeros((2, *shape), np.float32), [(2, d), (2, d)], "encoder")
    _check_shapes(batchers["decoder"], np.zeros((2, d), np.float32), [(2, *shape)], "decoder")
    card = tuple(sorted(p.name for p in (folder / CARD_DIR).glob("*.png") if p.is_file()))
    return Model(manifest, folder, batchers["encoder"], batchers["decoder"], card)


def load_registry(settings: Settings, pool: Executor, metrics: Metrics) -> Registry:
    models: list[Model] = []
    broken: list[BrokenArtifact] = []
    folders = sorted(p for p in settings.model_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        try:
            model = load_model(folder, settings, pool, metrics)
            if any(m.name == model.name for m in models):
                raise ArtifactError(f"another folder already serves a model named {model.name!r}")
        # Anything at all may go wrong in a foreign folder (onnxruntime raises its own types); none of it may
        # stop the other artifacts from loading.
        except Exception as error:
            broken.append(BrokenArtifact(folder.name, str(error)))
            log.error("skipped artifact %s: %s", folder.name, error)
            continue
        models.append(model)
        log.info("loaded model %s from %s", model.name, folder)
    metrics.models.set(len(models))
    metrics.broken.set(len(broken))
    return Registry(models, broken, settings.default_model)
