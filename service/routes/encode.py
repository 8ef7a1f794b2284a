"""Images in (base64 strings, float arrays or multipart uploads), latent posteriors out."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Protocol, TypeVar, cast

import numpy as np
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from contract.manifest import LatentLayout
from service import arraytext
from service.dependencies import RegistryDep, SettingsDep
from service.errors import INFERENCE_ERRORS, Invalid, error_responses, invalid
from service.forms import parse_form
from service.imaging import ImageReader
from service.payloads import INLINE_BODY_BYTES, MULTIPART, Call, Reply, documented_body, json_bytes, validated
from service.registry import Model, Registry
from service.runtime import Outputs
from service.schemas import EncodeOptions, EncodeRequest, EncodeResponse, ImageOptions
from service.settings import Settings
from service.validation import check_count

router = APIRouter(tags=["encode"])

Options = TypeVar("Options", bound=ImageOptions)


class _WithImages(Protocol):
    images: list[str | list[Any]]


@dataclass(frozen=True)
class Schemas(Generic[Options]):
    """A route's image body: its options as a multipart form's fields, and its JSON body (the options and
    ``images``, a subclass of ``form``)."""

    form: type[Options]
    json: type[Options]


ENCODE = Schemas(EncodeOptions, EncodeRequest)

# Bodies above this (or of unknown length) are read and decoded only in one of the `upload_slots`, so that
# memory is bounded by the slots and not by how many clients upload at once.
LARGE_BODY_BYTES = 1 << 20
ARRAY_EXPECTED = "a nested array of numbers (C, H, W) or (H, W) in [0, 1]"


def multipart_body(fields: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI of a multipart upload: files in ``images``, beside the form ``fields`` (name -> schema)."""
    images = {"type": "array", "items": {"type": "string", "format": "binary"}}
    return {
        MULTIPART: {"schema": {"type": "object", "required": ["images"], "properties": {"images": images, **fields}}}
    }


MULTIPART_BODY = multipart_body(
    {
        "model": {"type": "string"},
        "resize": {"type": "boolean"},
        "sample": {"type": "boolean"},
        "seed": {"type": "integer"},
    }
)


def _multipart(content_type: str, body: bytes, settings: Settings, schema: type[Options]) -> tuple[Options, list[Any]]:
    parts = parse_form(content_type, body, settings.max_items, max_fields=settings.max_items + 8)
    images: list[Any] = []
    options: dict[str, Any] = {}
    for key, value in parts:
        if key == "images":
            images.append(value)
        else:
            options[key] = value
    try:
        return schema.from_form(options), images
    except ValidationError as error:
        raise invalid(error) from None


def _parse_json(body: bytes, settings: Settings, schema: type[Options]) -> tuple[Options, list[Any]]:
    """The options and images of a JSON body, its number arrays read by ``arraytext`` (no Python floats)."""
    try:
        split = arraytext.split(body, "images", settings.max_items)
    except arraytext.NotArrayText:  # not an object with an images list: let the schema say what is wrong
        parsed = validated(schema, body)
        return parsed, cast(_WithImages, parsed).images
    parsed = validated(schema, split.rest)
    side = settings.max_image_side
    arrays = {
        i: arraytext.numbers(text, f"images[{i}]", ARRAY_EXPECTED, 3 * side * side) for i, text in split.arrays.items()
    }
    return parsed, arraytext.merged(list(cast(_WithImages, parsed).images), arrays)


def _read(
    call: Call, body: bytes, registry: Registry, settings: Settings, schemas: Schemas[Options]
) -> tuple[Options, Model, np.ndarray]:
    """Body to (options, model, (B, C, H, W) images): form or JSON parsing and image decoding, in a pool thread."""
    if call.content_type() == MULTIPART:
        options, raw = _multipart(call.headers.get("content-type", ""), body, settings, schemas.form)
    else:
        options, raw = _parse_json(body, settings, schemas.json)
    chosen = registry.get(options.model)
    call.state["model"] = chosen.name
    check_count(len(raw), "images", settings)
    if not raw:
        raise Invalid("images", "at least one image", "none")
    shape, side = chosen.manifest.image_shape, settings.max_image_side
    reader = ImageReader(shape, side, options.resize, settings.max_request_pixels)
    return options, chosen, reader.read_all(raw, "images")


def _upload_slot(call: Call) -> AbstractAsyncContextManager[Any]:
    declared = call.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) <= LARGE_BODY_BYTES:
        return nullcontext()
    slots: AbstractAsyncContextManager[Any] = call.app_state.upload_slots
    return slots


def _encoded(layout: LatentLayout, model: str, sample: bool, seed: int | None, outputs: Outputs) -> Reply:
    mu, logvar = outputs[0], outputs[1]
    probabilities = outputs[2] if layout.classes else np.zeros((len(mu), 0), np.float32)  # (B, k)
    payload: dict[str, object] = {"model": model, "mu": mu.tolist(), "logvar": logvar.tolist()}
    if layout.classes:
        slices = layout.probability_slices().items()
        payload["probabilities"] = {name: probabilities[:, where].tolist() for name, where in slices}
    payload["latent"] = layout.reconstruction(mu, probabilities).tolist()
    z = None
    if sample:
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal(mu.shape, dtype=np.float32)
        drawn = np.zeros_like(probabilities)
        for where in layout.probability_slices().values():
            # one class per image, drawn from its probabilities by inverting the cumulative sum
            cumulative = np.cumsum(probabilities[:, where], axis=1)
            classes = (cumulative < rng.random((len(mu), 1)) * cumulative[:, -1:]).sum(axis=1)
            drawn[np.arange(len(mu)), where.start + np.minimum(classes, where.stop - where.start - 1)] = 1
        z = layout.flat(mu + np.exp(0.5 * logvar) * noise, drawn).tolist()
    payload["z"] = z
    return Reply(json_bytes(payload))


async def read_images(
    call: Call, registry: Registry, settings: Settings, schemas: Schemas[Options]
) -> tuple[Options, Model, np.ndarray]:
    """A request that sends images (JSON or multipart, as /encode takes them) -> (its options, its model,
    (B, C, H, W) float32 images), or a rejection naming the field."""
    async with _upload_slot(call):
        body = await (call.read() if call.content_type() == MULTIPART else call.json_body(also=(MULTIPART,)))
        if len(body) <= INLINE_BODY_BYTES:  # a 64x64 PNG is 0.3-5 KB
            return _read(call, body, registry, settings, schemas)
        # parsing and decoding it would hold the event loop for longer than a small request takes
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, _read, call, body, registry, settings, schemas)


async def encode_call(call: Call, registry: Registry, settings: Settings) -> Reply:
    options, chosen, images = await read_images(call, registry, settings, ENCODE)
    finish = partial(_encoded, chosen.manifest.layout, chosen.name, options.sample, options.seed)
    reply: Reply = await chosen.encoder.submit(images, finish)
    return reply


@router.post(
    "/encode",
    summary="Encode images into latent means and log-variances, category probabilities (and samples)",
    response_model=EncodeResponse,
    responses=error_responses(*INFERENCE_ERRORS),
    openapi_extra=documented_body(EncodeRequest, MULTIPART_BODY),
)
async def encode(request: Request, registry: RegistryDep, settings: SettingsDep) -> Response:
    return (await encode_call(Call.of(request), registry, settings)).response()
