"""Images in (base64 strings, float arrays or multipart uploads), latent posteriors out."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext
from functools import partial
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service import arraytext
from service.artifact import LatentLayout
from service.dependencies import RegistryDep, SettingsDep
from service.errors import INFERENCE_ERRORS, Rejected, error_responses, invalid
from service.imaging import ImageReader
from service.payloads import MULTIPART, Reply, content_type, documented_body, json_body, json_bytes, validated
from service.runtime import Outputs
from service.schemas import EncodeOptions, EncodeRequest, EncodeResponse
from service.settings import Settings
from service.validation import check_count

router = APIRouter(tags=["encode"])

# Decoding a few small PNGs costs less than a hop to a thread and back; bigger payloads leave the loop.
INLINE_BYTES = 64 * 1024
# Bodies above this (or of unknown length) are read and decoded only in one of the `upload_slots`, so that
# memory is bounded by the slots and not by how many clients upload at once.
LARGE_BODY_BYTES = 1 << 20
ARRAY_EXPECTED = "a nested array of numbers (C, H, W) or (H, W) in [0, 1]"

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


def _unreadable(error: MultiPartException, settings: Settings) -> Rejected:
    # Starlette says what went wrong only in words; its messages have stayed the same across releases.
    if error.message.startswith(("Too many files", "Too many fields")):
        return Rejected(413, "images", f"at most {settings.max_items} images per request", "more")
    if error.message.startswith("Part exceeded"):
        return Rejected(413, "body", "form fields of at most 1 MiB each (send images as files)", "a larger one")
    return Rejected(400, "body", "a well-formed multipart/form-data body", error.message)


async def _multipart(request: Request, settings: Settings) -> tuple[EncodeOptions, list[Any]]:
    # The parser is run here rather than through request.form(), which turns every failure into a bare 400.
    parser = MultiPartParser(
        request.headers, request.stream(), max_files=settings.max_items, max_fields=settings.max_items + 8
    )
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise _unreadable(error, settings) from None
    try:
        images: list[Any] = []
        options: dict[str, Any] = {}
        for key, value in form.multi_items():
            if key == "images":
                images.append(await value.read() if isinstance(value, UploadFile) else value)
            else:
                options[key] = value
    finally:
        await form.close()
    try:
        # Form fields are text ("true", "3"), so here, and only here, they are converted.
        return EncodeOptions.model_validate(options, strict=False), images
    except ValidationError as error:
        raise invalid(error) from None


def _parse_json(body: bytes, settings: Settings) -> tuple[EncodeOptions, list[Any]]:
    """The options and images of a JSON body, its number arrays read by ``arraytext`` (no Python floats)."""
    try:
        split = arraytext.split(body, "images")
    except arraytext.NotArrayText:  # not an object with an images list: let the schema say what is wrong
        parsed = validated(EncodeRequest, body)
        return parsed, parsed.images
    parsed = validated(EncodeRequest, split.rest)
    side = settings.max_image_side
    arrays = {
        i: arraytext.numbers(text, f"images[{i}]", ARRAY_EXPECTED, 3 * side * side) for i, text in split.arrays.items()
    }
    return parsed, arraytext.merged(list(parsed.images), arrays)


def _upload_slot(request: Request) -> AbstractAsyncContextManager[Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) <= LARGE_BODY_BYTES:
        return nullcontext()
    slots: AbstractAsyncContextManager[Any] = request.app.state.upload_slots
    return slots


def _encoded(layout: LatentLayout, model: str, sample: bool, seed: int | None, outputs: Outputs) -> Reply:
    mu, logvar = outputs[0], outputs[1]
    probabilities = outputs[2] if layout.classes else np.zeros((len(mu), 0), np.float32)  # (B, k)
    payload: dict[str, object] = {"model": model, "mu": mu.tolist(), "logvar": logvar.tolist()}
    if layout.classes:
        slices = layout.probability_slices().items()
        payload["probabilities"] = {name: probabilities[:, where].tolist() for name, where in slices}
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


@router.post(
    "/encode",
    summary="Encode images into latent means and log-variances, category probabilities (and samples)",
    response_model=EncodeResponse,
    responses=error_responses(*INFERENCE_ERRORS),
    openapi_extra=documented_body(EncodeRequest, MULTIPART_BODY),
)
async def encode(request: Request, registry: RegistryDep, settings: SettingsDep) -> Response:
    async with _upload_slot(request):
        if content_type(request) == MULTIPART:
            options, raw = await _multipart(request, settings)
        else:
            body = await json_body(request, also=(MULTIPART,))
            if len(body) <= INLINE_BYTES:
                options, raw = _parse_json(body, settings)
            else:
                options, raw = await run_in_threadpool(_parse_json, body, settings)
        chosen = registry.get(options.model)
        request.state.model = chosen.name
        check_count(len(raw), "images", settings)
        if not raw:
            raise Rejected(422, "images", "at least one image", "none")
        reader = ImageReader(
            chosen.manifest.image_shape, settings.max_image_side, options.resize, settings.max_request_pixels
        )
        small = all(isinstance(v, str | bytes) for v in raw) and sum(len(v) for v in raw) <= INLINE_BYTES
        images = reader.read_all(raw, "images") if small else await run_in_threadpool(reader.read_all, raw, "images")
    finish = partial(_encoded, chosen.manifest.layout, chosen.name, options.sample, options.seed)
    reply: Reply = await chosen.encoder.submit(images, finish)
    return reply.response()
