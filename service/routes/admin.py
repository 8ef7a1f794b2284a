"""Operating a running service: reload the models from the model directory without a restart."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.dependencies import SettingsDep
from service.errors import Conflict, Forbidden, error_responses
from service.registry import reload_registry

router = APIRouter(prefix="/admin", tags=["admin"])

LOOPBACK = frozenset({"127.0.0.1", "::1"})


@router.post(
    "/reload",
    summary="Load the artifacts as they are now on disk; models that fail to load keep serving as they were",
    responses=error_responses(403, 409),
)
async def reload(request: Request, settings: SettingsDep) -> JSONResponse:
    # With a key, the key guards this route like every other. Without one, anyone who can reach the port
    # can call the inference routes, but reloading costs seconds of CPU and changes what is served: that is
    # left to the service's own host (an operator's shell, a sidecar), never to the network.
    if settings.api_key is None:
        client = request.client.host if request.client is not None else "an unknown address"
        if client not in LOOPBACK:
            raise Forbidden(
                None, "a request from the service's own host (or DISENTANGLE_API_KEY set)", f"one from {client}"
            )
    state = request.app.state
    async with state.reload_lock:  # one reload at a time; requests go on being served meanwhile
        done = await run_in_threadpool(reload_registry, state.registry, settings, state.pool, state.metrics)
        # One assignment: a request that started before it finishes on the models it already holds.
        state.registry = done.registry
    body: dict[str, Any] = {
        "default": done.registry.default,
        "models": list(done.registry.models),
        "loaded": done.loaded,
        "unchanged": done.unchanged,
        "kept": done.kept,
        "broken": [{"folder": b.folder, "error": b.error} for b in done.registry.all_broken()],
    }
    if done.registry.broken:
        reasons = "; ".join(f"{b.folder}: {b.error}" for b in done.registry.broken)
        error = Conflict("model_dir", "every artifact folder to load", reasons)
        return JSONResponse(error.body() | body, status_code=error.status)
    return JSONResponse(body)
