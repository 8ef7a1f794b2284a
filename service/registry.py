"""Finds the artifacts under the model directory, verifies them and loads them into onnxruntime.

Every sub-folder of ``model_dir`` is one artifact. Each is checked on its own (manifest schema, sha256 of
both ONNX files, the networks' input and output shapes, one warm-up run); a folder that fails any check is
recorded with the reason and skipped, so one broken artifact never takes the others down.

A loaded model lives in memory; its files may change under it. ``Registry.check_files`` (run by /readyz and
/models) notices a file that vanished or no longer matches its manifest and reports that model as degraded
while it keeps serving from memory; the service as a whole stays ready. ``reload_registry`` builds the next
registry from the folders as they are now: unchanged artifacts keep their sessions, changed ones are loaded
afresh, and one that fails to load keeps its previous model.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ValidationError

from contract.bounds import LatentBounds, latent_bounds
from contract.manifest import CARD_DIR, MANIFEST_NAME, Manifest, read_manifest, sha256_of
from contract.tensors import DECODER_OUTPUTS, IMAGE, LATENT, encoder_outputs
from service.errors import NotFound, shown, validation_body
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


Stat = tuple[int, int]  # (size, mtime_ns): when it is unchanged, so is the file's content for our purposes


def _stat(path: Path) -> Stat | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_size, found.st_mtime_ns


@dataclass
class Model:
    manifest: Manifest
    folder: Path
    encoder: Batcher
    decoder: Batcher
    card: tuple[str, ...] = ()  # the PNG pictures of the model card (`disentangle-train eval` writes them)
    digests: dict[str, str] | None = None  # sha256 of manifest.json and the ONNX files as loaded, by file name
    # (file name, its stat) -> its sha256, so that an unchanged file is hashed once, not on every check
    _hashed: dict[tuple[str, Stat], str] | None = None
    _checked: tuple[tuple[Stat | None, ...], str | None] | None = None  # the files' stats, and what they meant
    bounds: LatentBounds = field(init=False)  # what a latent to decode must lie within, from the manifest

    def __post_init__(self) -> None:
        self.bounds = latent_bounds(self.manifest)

    @property
    def name(self) -> str:
        return self.manifest.name

    def _digest(self, name: str) -> str | None:
        path = self.folder / name
        stat = _stat(path)
        if stat is None:
            return None
        if self._hashed is None:
            self._hashed = {}
        key = (name, stat)
        if key not in self._hashed:
            try:
                self._hashed[key] = sha256_of(path)
            except OSError:
                return None
        return self._hashed[key]

    def files_problem(self) -> str | None:
        """Why the files on disk can no longer serve this model (gone, or not what their manifest says).

        A consistent new version (a new manifest with ONNX files that match it) is no problem: a reload
        picks it up. While no file's size or time changes, the last answer stands: a check costs three stats.
        """
        names = (MANIFEST_NAME, *(entry.path for entry in self.manifest.files.values()))
        stats = tuple(_stat(self.folder / name) for name in names)
        if self._checked is None or self._checked[0] != stats:
            self._checked = (stats, self._files_problem())
        return self._checked[1]

    def _files_problem(self) -> str | None:
        if not self.folder.is_dir():
            return f"the folder {self.folder.name} vanished"
        if self._digest(MANIFEST_NAME) is None:
            return f"{MANIFEST_NAME} vanished"
        try:
            files = json.loads((self.folder / MANIFEST_NAME).read_bytes())["files"]
            declared = {role: (files[role]["path"], files[role]["sha256"]) for role in ("encoder", "decoder")}
        except (OSError, ValueError, KeyError, TypeError):
            return f"{MANIFEST_NAME} is no longer a readable manifest"
        for path, sha256 in declared.values():
            actual = self._digest(path)
            if actual is None:
                return f"{path} vanished"
            if actual != sha256:
                return f"{path} no longer matches the sha256 in {MANIFEST_NAME} (truncated or overwritten)"
        return None

    def unchanged_on_disk(self) -> bool:
        if self.digests is None:
            return False
        return all(self._digest(name) == digest for name, digest in self.digests.items())


class Registry:
    def __init__(self, models: list[Model], broken: list[BrokenArtifact], configured_default: str | None) -> None:
        self.models = {m.name: m for m in sorted(models, key=lambda m: m.name)}
        self.broken = broken
        self.configured_default = configured_default
        if configured_default is None:
            self.default = next(iter(self.models), None)
        else:
            self.default = configured_default if configured_default in self.models else None
        self.on_disk: dict[str, str] = {}  # loaded models whose files went bad, and why (see check_files)

    def check_files(self) -> None:
        """Look at every loaded model's files again (cheap: a stat per file, hashing only what changed)."""
        self.on_disk = {name: why for name, model in self.models.items() if (why := model.files_problem())}

    def all_broken(self) -> list[BrokenArtifact]:
        """Folders that failed to load, then loaded models whose files went bad (they still serve)."""
        serving = [
            BrokenArtifact(self.models[name].folder.name, f"{why}; still serving {name} from memory")
            for name, why in self.on_disk.items()
        ]
        return self.broken + serving

    @property
    def problem(self) -> str | None:
        """Why the service is not ready, or None when it is: ready while the default model serves.

        A model whose files went bad on disk serves from memory, and another model's failing network concerns
        requests to that model only: both degrade that model (``model_problem``), never the service. Every
        replica mounts the same model folder, so one bad upload would otherwise take them all out at once.
        """
        if not self.models:
            return "no model loaded" + (f"; broken: {[b.folder for b in self.broken]}" if self.broken else "")
        if self.default is None:
            return f"the configured default model {self.configured_default!r} is not loaded"
        return self.failing(self.default)

    def failing(self, name: str) -> str | None:
        """Why model ``name`` cannot answer requests now (a network that keeps failing), or None."""
        model = self.models[name]
        problems = [why for b in (model.encoder, model.decoder) if (why := b.failing) is not None]
        return "; ".join(problems) if problems else None

    def model_problem(self, name: str) -> str | None:
        """What is wrong with model ``name``: a failing network, or its files on disk (it serves from memory)."""
        problems = [why] if (why := self.failing(name)) is not None else []
        if name in self.on_disk:
            problems.append(f"{name}'s files: {self.on_disk[name]} (still serving from memory)")
        return "; ".join(problems) if problems else None

    def get(self, name: str | None) -> Model:
        key = name if name is not None else self.default
        if key is not None and key in self.models:
            return self.models[key]
        received = shown(name) if name is not None else f"no model, and the default ({self.problem})"
        raise NotFound("model", f"one of {list(self.models)}", received)

    async def close(self) -> None:
        for model in self.models.values():
            await model.encoder.close()
            await model.decoder.close()


Role = Literal["encoder", "decoder"]


def networks(manifest: Manifest) -> tuple[tuple[Role, str, list[str]], ...]:
    """Each network's role, its input name and the outputs the service reads, in that order. An encoder whose
    layout has categorical parts also answers their probabilities."""
    return (("encoder", IMAGE, encoder_outputs(manifest.layout)), ("decoder", LATENT, DECODER_OUTPUTS))


def _file(folder: Path, manifest: Manifest, role: Role, digests: dict[str, str]) -> Path:
    """The ONNX file of ``role``, checked against the manifest's sha256 (``digests``: the files' hashes)."""
    entry = manifest.files[role]
    path = (folder / entry.path).resolve()
    if not _inside(folder, entry.path):
        raise ArtifactError(f"files.{role}.path {entry.path!r} points outside the artifact folder")
    actual = digests.get(entry.path)
    if not path.is_file() or actual is None:
        raise ArtifactError(f"{entry.path} is missing")
    if actual != entry.sha256:
        raise ArtifactError(f"{entry.path} has sha256 {actual}, the manifest expects {entry.sha256}")
    return path


def _inside(folder: Path, name: str) -> bool:
    return (folder / name).resolve().is_relative_to(folder.resolve())


def _hash_files(folder: Path, names: list[str]) -> dict[tuple[str, Stat], str]:
    """Each file's sha256, by (name, stat): hashed once at load, and again only once a file changes. A name
    that leads out of the folder is left for ``_file`` to refuse, unread."""
    hashed = {}
    for name in names:
        if not _inside(folder, name):
            continue
        stat = _stat(folder / name)
        if stat is not None:
            hashed[(name, stat)] = sha256_of(folder / name)
    return hashed


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
    hashed = _hash_files(folder, [MANIFEST_NAME, *(entry.path for entry in manifest.files.values())])
    digests = {name: digest for (name, _), digest in hashed.items()}
    batchers = {}
    for role, input_name, outputs in networks(manifest):
        session = open_session(_file(folder, manifest, role, digests), settings)
        inputs = [i.name for i in session.get_inputs()]
        names = [o.name for o in session.get_outputs()]
        if inputs != [input_name] or not set(outputs) <= set(names):
            raise ArtifactError(f"{role} has inputs {inputs} and outputs {names}, expected {input_name} -> {outputs}")
        batchers[role] = Batcher(manifest.name, role, session, outputs, pool, metrics, settings)
    d, c, k, shape = manifest.latent_dim, manifest.layout.continuous, manifest.layout.classes, manifest.image_shape
    # A run with a batch of 2 proves the batch axis is dynamic and the shapes match the manifest.
    encoded: list[tuple[int, ...]] = [(2, c), (2, c)]
    if k:
        encoded.append((2, k))
    _check_shapes(batchers["encoder"], np.zeros((2, *shape), np.float32), encoded, "encoder")
    _check_shapes(batchers["decoder"], np.zeros((2, d), np.float32), [(2, *shape)], "decoder")
    card = tuple(sorted(p.name for p in (folder / CARD_DIR).glob("*.png") if p.is_file()))
    return Model(manifest, folder, batchers["encoder"], batchers["decoder"], card, digests, hashed)


def _folders(settings: Settings) -> list[Path]:
    return sorted(p for p in settings.model_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_registry(settings: Settings, pool: Executor, metrics: Metrics) -> Registry:
    return reload_registry(None, settings, pool, metrics).registry


@dataclass
class Reload:
    registry: Registry
    loaded: list[str]  # models loaded afresh (new or changed on disk)
    unchanged: list[str]  # models whose files had not changed: same sessions
    kept: dict[str, str]  # models whose folder failed to load (or vanished): the previous one serves, and why


def reload_registry(previous: Registry | None, settings: Settings, pool: Executor, metrics: Metrics) -> Reload:
    """The registry of the folders as they are now; ``previous``'s models stand in for folders that fail."""
    old_by_folder = {m.folder.name: m for m in previous.models.values()} if previous is not None else {}
    models: list[Model] = []
    broken: list[BrokenArtifact] = []
    loaded: list[str] = []
    unchanged: list[str] = []
    kept: dict[str, str] = {}
    folders = _folders(settings)
    for folder in folders:
        old = old_by_folder.get(folder.name)
        try:
            if old is not None and old.unchanged_on_disk():
                model = old
            else:
                model = load_model(folder, settings, pool, metrics)
            if any(m.name == model.name for m in models):
                raise ArtifactError(f"another folder already serves a model named {model.name!r}")
        # Anything at all may go wrong in a foreign folder (onnxruntime raises its own types); none of it may
        # stop the other artifacts from loading.
        except Exception as error:
            broken.append(BrokenArtifact(folder.name, str(error)))
            log.error("skipped artifact %s: %s", folder.name, error)
            if old is not None and not any(m.name == old.name for m in models):
                models.append(old)
                kept[old.name] = str(error)
            continue
        models.append(model)
        (unchanged if model is old else loaded).append(model.name)
        if model is not old:
            log.info("loaded model %s from %s", model.name, folder)
    # A loaded model whose folder is gone keeps serving from memory (check_files reports it) until a restart.
    present = {f.name for f in folders}
    for name, old in old_by_folder.items():
        if name not in present and not any(m.name == old.name for m in models):
            models.append(old)
            kept[old.name] = f"the folder {name} vanished"
    registry = Registry(models, broken, settings.default_model)
    registry.check_files()
    metrics.models.set(len(models))
    metrics.broken.set(len(registry.all_broken()))
    return Reload(registry, loaded, unchanged, kept)
