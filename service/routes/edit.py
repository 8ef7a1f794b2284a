"""Edit images: each is encoded, the named factors replace its own, the rest of its latent stays, and it is
decoded again ("this 3, small, at the top, rotated 30 degrees", in the writer's hand).

The images come as /encode takes them (multipart uploads, base64 PNG/JPEG, nested float arrays), read by the
same code; the factors are checked as /synthesize checks them. How an edit moves a latent, and how the
factors are read from one: ``contract/editing.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from contract.calibration import FactorRequestError, latent_for
from contract.editing import edited, factors_of
from contract.manifest import Calibration, FactorValue, LatentLayout
from service.dependencies import RegistryDep, SettingsDep
from service.errors import INFERENCE_ERRORS, Invalid, error_responses, shown
from service.imaging import b64, pngs
from service.payloads import Call, Reply, documented_body, json_bytes
from service.registry import Registry
from service.routes.encode import Schemas, multipart_body, read_images
from service.runtime import Outputs
from service.schemas import EditOptions, EditRequest, EditResponse
from service.settings import Settings

router = APIRouter(tags=["edit"])

EDIT = Schemas(EditOptions, EditRequest)
MULTIPART_BODY = multipart_body(
    {
        "factors": {"type": "string", "description": 'a JSON object, e.g. {"digit": 3, "rotation": 30}'},
        "model": {"type": "string"},
        "resize": {"type": "boolean"},
    }
)


def _check_factors(calibration: Calibration, factors: Mapping[str, FactorValue]) -> None:
    """A 422 naming the first factor the calibration cannot place, before any image is encoded."""
    try:
        latent_for(calibration, factors)
    except FactorRequestError as error:
        raise Invalid(f"factors.{error.factor}", error.expected, shown(error.received)) from None


def _edit(
    model: str, calibration: Calibration, layout: LatentLayout, factors: Mapping[str, FactorValue], outputs: Outputs
) -> tuple[np.ndarray, dict[str, Any]]:
    """Encoder outputs -> (B, d) edited latents, and the answer so far: what was read, the latents."""
    probabilities = outputs[2] if layout.classes else None  # (B, k)
    bases = layout.reconstruction(outputs[0], probabilities)  # (B, d)
    read = [factors_of(calibration, z) for z in bases]
    latents = np.stack([edited(calibration, z, factors, r) for z, r in zip(bases, read, strict=True)])
    payload: dict[str, Any] = {
        "model": model,
        "read": read,
        "probabilities": None,
        "base": bases.tolist(),
        "latents": latents.tolist(),
    }
    if probabilities is not None:
        slices = layout.probability_slices().items()
        payload["probabilities"] = {name: probabilities[:, where].tolist() for name, where in slices}
    return latents, payload


def _finish(payload: dict[str, Any], outputs: Outputs) -> Reply:
    payload["images"] = [b64(p) for p in pngs(outputs[0])]
    return Reply(json_bytes(payload))


async def edit_call(call: Call, registry: Registry, settings: Settings) -> Reply:
    options, model, images = await read_images(call, registry, settings, EDIT)
    calibration = model.manifest.calibration
    if calibration is None:
        calibrated = [m.name for m in registry.models.values() if m.manifest.calibration is not None]
        raise Invalid("model", f"a model with a factor calibration, one of {calibrated}", repr(model.name))
    _check_factors(calibration, options.factors)
    # The edits run with the encoder's batch (in the inference thread when it has company), not on the loop.
    edit = partial(_edit, model.name, calibration, model.manifest.layout, options.factors)
    latents, payload = await model.encoder.submit(images, edit)
    reply: Reply = await model.decoder.submit(latents, partial(_finish, payload))
    return reply


@router.post(
    "/edit",
    summary="Redraw images with some factors changed and the rest (a writer's style) kept (calibrated models)",
    response_model=EditResponse,
    responses=error_responses(*INFERENCE_ERRORS),
    openapi_extra=documented_body(EditRequest, MULTIPART_BODY),
)
async def edit(request: Request, registry: RegistryDep, settings: SettingsDep) -> Response:
    return (await edit_call(Call.of(request), registry, settings)).response()
