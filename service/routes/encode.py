"""Images in (base64 strings, float arrays or multipart uploads), latent posteriors out."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from service.dependencies import RegistryDep, SettingsDep
from service.errors import Rejected
from service.forms import parse_form
from service.imaging import ImageReader
from service.payloads import MULTIPART, Call, Reply, documented_body, json_bytes
from service.registry import Model, Registry
from service.runtime import Outputs
from service.schemas import EncodeOptions, EncodeRequest, EncodeResponse
from service.settings import Settings
from service.validation import check_count

router = APIRouter(tags=["encode"])

MULTIPART_BODY = {
    MULTIPART: {
        "schema": {
            "type": "object",
            "required": ["images"],
            "properties": {
                "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
                "model": {"type": "string"},
                "resize": {"type": "boolean"},
                "sample": {"type": "boolean"},
                "seed": {"type": "integer"},
            },
        }
    }
}


def _multipart(call: Call, settings: Settings) -> tuple[EncodeOptions, list[Any]]:
    content_type = call.headers.get("content-type", "")
    parts = parse_form(content_type, call.body, max_files=settings.max_items, max_fields=settings.max_items + 8)
    images: list[Any] = []
    options: dict[str, Any] = {}
    for key, value in parts:
        if key == "images":
            images.append(value)
        else:
            options[key] = value
    return EncodeOptions.model_validate(options), images


def _read(call: Call, registry: Registry, settings: Settings) -> tuple[EncodeOptions, Model, np.ndarray]:
    """Body to (options, model, (B, C, H, W) images): form parsing and image decoding, in a pool thread."""
    if call.content_type() == MULTIPART:
        options, raw = _multipart(call, settings)
    else:
        body = call.parse_json(EncodeRequest, also=(MULTIPART,))
        options, raw = body, body.images
    chosen = registry.get(options.model)
    call.state["model"] = chosen.name
    check_count(len(raw), "images", settings)
    if not raw:
        raise Rejected(422, "images", "at least one image", "none")
    reader = ImageReader(chosen.manifest.image_shape, settings.max_image_side, options.resize)
    return options, chosen, reader.read_all(raw, "images")


def _encoded(model: str, sample: bool, seed: int | None, outputs: Outputs) -> Reply:
    mu, logvar = outputs
    z = None
    if sample:
        noise = np.random.default_rng(seed).standard_normal(mu.shape, dtype=np.float32)
        z = (mu + np.exp(0.5 * logvar) * noise).tolist()
    return Reply(json_bytes({"model": model, "mu": mu.tolist(), "logvar": logvar.tolist(), "z": z}))


async def encode_call(call: Call, registry: Registry, settings: Settings) -> Reply:
    # Form parsing and image decoding would hold the event loop for most of a small request's time.
    loop = asyncio.get_running_loop()
    options, chosen, images = await loop.run_in_executor(None, _read, call, registry, settings)
    finish = partial(_encoded, chosen.name, options.sample, options.seed)
    reply: Reply = await chosen.encoder.submit(images, finish)
    return reply


@router.post(
    "/encode",
    summary="Encode images into latent means and log-variances (and samples)",
    response_model=EncodeResponse,
    openapi_extra=documented_body(EncodeRequest, MULTIPART_BODY),
)
async def encode(request: Request, registry: RegistryDep, settings: SettingsDep) -> Response:
    return (await encode_call(await Call.of(request), registry, settings)).response()
