"""Latent traversals: vary chosen dimensions of a base latent over a range and decode every step."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from contract.grid import tile
from contract.manifest import Manifest
from contract.ranges import centre, dim_range
from service.dependencies import RegistryDep, SettingsDep
from service.errors import INFERENCE_ERRORS, Invalid, error_responses, shown
from service.imaging import ImageReader, b64, gif, png, pngs
from service.payloads import GIF, PNG, Reply, documented_body, json_bytes, parse_json
from service.registry import Model
from service.runtime import Outputs
from service.schemas import TraverseFrames, TraverseRequest
from service.settings import Settings
from service.validation import check_count, check_latents

router = APIRouter(tags=["traverse"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {PNG: {"schema": {"type": "string", "format": "binary"}}, GIF: {}},
        "description": "format grid: one PNG, rows = dims, columns = steps; format gif: an animated GIF; "
        "format frames: JSON. X-Traverse-Dims and X-Traverse-Ranges say what was varied.",
    }
}


async def _base(body: TraverseRequest, model: Model, settings: Settings) -> np.ndarray:
    manifest = model.manifest
    if body.latent is not None and body.image is not None:
        raise Invalid("latent, image", "at most one base", "both")
    if body.latent is not None:
        return check_latents([body.latent], "latent", model, settings)[0]
    layout = manifest.layout
    if body.image is not None:
        reader = ImageReader(manifest.image_shape, settings.max_image_side, body.resize)
        outputs = await model.encoder.submit(reader.read(body.image, "image")[None])
        return layout.reconstruction(outputs[0], outputs[2] if layout.classes else None)[0]
    return centre(manifest)


def _dims(body: TraverseRequest, manifest: Manifest) -> list[int]:
    d, layout = manifest.latent_dim, manifest.layout
    if body.dims is None:
        return manifest.active_dims or list(range(layout.continuous)) or list(range(d)[layout.noise_slice])
    categorical = range(layout.continuous, layout.continuous + layout.classes)
    for i, j in enumerate(body.dims):
        if not 0 <= j < d:
            raise Invalid(f"dims[{i}]", f"a dimension in [0, {d})", str(j))
        if j in categorical:
            raise Invalid(f"dims[{i}]", "a continuous or noise dimension (walk a categorical part with `part`)", str(j))
    if len(set(body.dims)) != len(body.dims):
        raise Invalid("dims", "distinct dimensions", str(body.dims))
    return body.dims


def _ranges(body: TraverseRequest, model: Model, dims: list[int]) -> list[tuple[float, float]]:
    if body.range is not None:
        low, high = body.range
        # Within every walked dim's bounds: the tightest of them.
        floor = max(float(model.bounds.low[j]) for j in dims)
        ceiling = min(float(model.bounds.high[j]) for j in dims)
        if not floor <= low < high <= ceiling:
            expected = f"[low, high] with {floor:.7g} <= low < high <= {ceiling:.7g} (the bounds of dims {dims})"
            raise Invalid("range", expected, shown(list(body.range)))
        return [(low, high)] * len(dims)
    return [dim_range(model.manifest, j) for j in dims]  # the contract's rule: the page's sliders span the same


def _finish(
    fmt: str,
    model: str,
    base: np.ndarray,
    dims: list[int],
    part: str | None,
    values: np.ndarray,
    headers: dict[str, str],
    outputs: Outputs,
) -> Reply:
    rows, steps = values.shape
    images = outputs[0].reshape(rows, steps, *outputs[0].shape[1:])
    if fmt == "grid":
        return Reply(png(tile(images)), PNG, headers)
    if fmt == "gif":
        return Reply(gif(images), GIF, headers)
    frames = [[b64(p) for p in pngs(row)] for row in images]
    payload = {
        "model": model,
        "base": base.tolist(),
        "dims": dims,
        "part": part,
        "values": values.tolist(),
        "frames": frames,
    }
    return Reply(json_bytes(payload), headers=headers)


async def _walk_part(body: TraverseRequest, model: Model, settings: Settings) -> Response:
    """One row: the base latent with the part set to each of its classes in turn (one column per class)."""
    manifest = model.manifest
    slices = manifest.layout.part_slices()
    if body.part not in slices:
        raise Invalid("part", f"a categorical part of {model.name}, one of {list(slices)}", shown(body.part))
    if body.dims is not None or body.range is not None:
        raise Invalid("dims, range", "neither with `part`: a part is walked through its classes", "given")
    where = slices[body.part]
    classes = where.stop - where.start
    base = await _base(body, model, settings)
    latents = np.repeat(base[None], classes, axis=0)  # (K, d)
    latents[:, where] = np.eye(classes, dtype=np.float32)
    values = np.arange(classes, dtype=np.float32)[None]  # (1, K)
    headers = {"X-Traverse-Part": body.part, "X-Traverse-Classes": str(classes)}
    finish = partial(_finish, body.format, model.name, base, [], body.part, values, headers)
    reply: Reply = await model.decoder.submit(latents, finish)
    return reply.response()


@router.post(
    "/traverse",
    summary="Vary latent dimensions of a base, or walk a categorical part through its classes, and decode each step",
    response_model=TraverseFrames,
    responses=RESPONSES | error_responses(*INFERENCE_ERRORS),
    openapi_extra=documented_body(TraverseRequest),
)
async def traverse(request: Request, registry: RegistryDep, settings: SettingsDep) -> Response:
    body = await parse_json(request, TraverseRequest)
    model = registry.get(body.model)
    request.state.model = model.name
    manifest = model.manifest
    if body.steps > settings.max_traverse_steps:
        raise Invalid("steps", f"at most {settings.max_traverse_steps}", str(body.steps))
    if body.part is not None:
        return await _walk_part(body, model, settings)
    dims = _dims(body, manifest)
    check_count(len(dims) * body.steps, "dims x steps", settings)
    ranges = _ranges(body, model, dims)
    base = await _base(body, model, settings)
    values = np.stack([np.linspace(low, high, body.steps, dtype=np.float32) for low, high in ranges])
    latents = np.repeat(base[None, None], len(dims), axis=0).repeat(body.steps, axis=1)  # (rows, steps, d)
    for r, j in enumerate(dims):
        latents[r, :, j] = values[r]
    headers = {
        "X-Traverse-Dims": ",".join(map(str, dims)),
        "X-Traverse-Ranges": ",".join(f"{low:.4g}:{high:.4g}" for low, high in ranges),
    }
    finish = partial(_finish, body.format, model.name, base, dims, None, values, headers)
    reply: Reply = await model.decoder.submit(latents.reshape(-1, manifest.latent_dim), finish)
    return reply.response()
