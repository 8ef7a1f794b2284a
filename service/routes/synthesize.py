"""Named factor values in, image out: the model's factor calibration turns them into a latent."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from contract.calibration import FactorRequestError, latent_for
from contract.images import to_pixels
from service.dependencies import RegistryDep, SettingsDep
from service.errors import INFERENCE_ERRORS, Invalid, error_responses, shown
from service.imaging import b64, png
from service.payloads import PNG, Call, Reply, documented_body, json_bytes
from service.registry import Registry
from service.runtime import Outputs
from service.schemas import SynthesizeRequest, SynthesizeResponse
from service.settings import Settings
from service.validation import check_latents

router = APIRouter(tags=["synthesize"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {PNG: {"schema": {"type": "string", "format": "binary"}}},
        "description": "JSON by default; the PNG itself with `Accept: image/png`, the latent in X-Latent",
    }
}


def _finish(model: str, latent: np.ndarray, raw: bool, outputs: Outputs) -> Reply:
    picture = png(to_pixels(outputs[0])[0])
    if raw:
        return Reply(picture, PNG, {"X-Latent": ",".join(f"{v:.6g}" for v in latent)})
    return Reply(json_bytes({"model": model, "latent": latent.tolist(), "image": b64(picture)}))


async def synthesize_call(call: Call, registry: Registry, settings: Settings) -> Reply:
    body = await call.parse_json(SynthesizeRequest)
    model = registry.get(body.model)
    call.state["model"] = model.name
    calibration = model.manifest.calibration
    if calibration is None:
        calibrated = [m.name for m in registry.models.values() if m.manifest.calibration is not None]
        raise Invalid("model", f"a model with a factor calibration, one of {calibrated}", repr(model.name))
    try:
        latent = latent_for(calibration, body.factors)
    except FactorRequestError as error:
        raise Invalid(f"factors.{error.factor}", error.expected, shown(error.received)) from None
    latents = check_latents(latent[None], "latent", model, settings)
    finish = partial(_finish, model.name, latents[0], call.accepts(PNG))
    reply: Reply = await model.decoder.submit(latents, finish)
    return reply


@router.post(
    "/synthesize",
    summary="Decode the image that named factor values describe (models with a factor calibration)",
    response_model=SynthesizeResponse,
    responses=RESPONSES | error_responses(*INFERENCE_ERRORS),
    openapi_extra=documented_body(SynthesizeRequest),
)
async def synthesize(request: Request, registry: RegistryDep, settings: SettingsDep) -> Response:
    return (await synthesize_call(Call.of(request), registry, settings)).response()
