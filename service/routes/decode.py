"""Latent vectors in, images out: JSON or raw float32 in; base64 PNGs, float arrays, a PNG or float32 out."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request, Response

from contract.images import to_pixels
from service.dependencies import RegistryDep, SettingsDep
from service.errors import INFERENCE_ERRORS, NotAcceptable, error_responses
from service.imaging import b64, png, pngs
from service.payloads import BINARY, PNG, Call, Reply, documented_body, json_bytes
from service.registry import Registry
from service.runtime import Outputs
from service.schemas import DecodeRequest, DecodeResponse
from service.settings import Settings
from service.validation import assemble_latents, binary_latents, check_latents

router = APIRouter(tags=["decode"])

BINARY_BODY = {
    BINARY: {
        "schema": {"type": "string", "format": "binary"},
        "description": "little-endian float32 latents of shape (B, d), given in X-Shape or ?shape=",
    }
}
# Read by hand in the binary branch and documented here, so the JSON path pays for no parameter parsing.
BINARY_PARAMETERS = [
    {"name": "model", "in": "query", "schema": {"type": "string"}, "description": "for octet-stream bodies"},
    {
        "name": "shape",
        "in": "query",
        "schema": {"type": "string"},
        "description": "'B,d' for octet-stream bodies",
    },
    {"name": "X-Shape", "in": "header", "schema": {"type": "string"}, "description": "same as ?shape="},
]
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            PNG: {"schema": {"type": "string", "format": "binary"}},
            BINARY: {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "JSON by default; one PNG with `Accept: image/png` and one latent; "
        "float32 (B, C, H, W) with `Accept: application/octet-stream`, its shape in X-Shape",
    }
}


def _float32(outputs: Outputs) -> Reply:
    images = outputs[0]
    return Reply(images.astype("<f4").tobytes(), BINARY, {"X-Shape": ",".join(map(str, images.shape))})


def _one_png(outputs: Outputs) -> Reply:
    return Reply(png(to_pixels(outputs[0])[0]), PNG)


def _json(model: str, fmt: str, outputs: Outputs) -> Reply:
    images = [b64(p) for p in pngs(outputs[0])] if fmt == "png" else outputs[0].tolist()
    return Reply(json_bytes({"model": model, "images": images}))


async def decode_call(call: Call, registry: Registry, settings: Settings) -> Reply:
    if call.content_type() == BINARY:
        chosen = registry.get(call.query.get("model"))
        call.state["model"] = chosen.name
        shape = call.headers.get("x-shape") or call.query.get("shape")
        latents = binary_latents(await call.read(), shape, chosen, settings)
        fmt = "png"
    else:
        body = await call.parse_json(DecodeRequest, also=(BINARY,))
        chosen = registry.get(body.model)
        call.state["model"] = chosen.name
        if body.categorical is None:
            latents = check_latents(body.latents, "latents", chosen, settings)
        else:
            latents = assemble_latents(body.latents, body.categorical, chosen, settings)
        fmt = body.format
    if call.accepts(BINARY):
        finish = _float32
    elif call.accepts(PNG):
        if len(latents) != 1:
            raise NotAcceptable("Accept", "image/png with exactly one latent", f"{len(latents)} latents")
        finish = _one_png
    else:
        finish = partial(_json, chosen.name, fmt)
    reply: Reply = await chosen.decoder.submit(latents, finish)
    return reply


@router.post(
    "/decode",
    summary="Decode latent vectors into images",
    response_model=DecodeResponse,
    responses=RESPONSES | error_responses(*INFERENCE_ERRORS, 406),
    openapi_extra=documented_body(DecodeRequest, BINARY_BODY) | {"parameters": BINARY_PARAMETERS},
)
async def decode(request: Request, registry: RegistryDep, settings: SettingsDep) -> Response:
    return (await decode_call(Call.of(request), registry, settings)).response()
