"""Liveness, readiness and Prometheus metrics.

``/healthz`` and ``/readyz`` stay open when an API key is set, for orchestrators, and then name no model
unless the request carries the key: a model's name is data the key guards. ``/readyz/{name}`` and ``/metrics``
(whose labels name the models) need the key like every other route; Prometheus sends it with
``authorization: {credentials: ...}`` in its scrape config.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.dependencies import RegistryDep, SettingsDep, key_given
from service.errors import Unavailable, error_responses

router = APIRouter(tags=["health"])
guarded_router = APIRouter(tags=["health"])
READY = "the default model loaded and serving"


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The default model is loaded and serving; 503 naming what is wrong otherwise. A model whose files "
    "went bad, or whose network keeps failing, is degraded (see /models and /readyz/{name}), not the service",
    responses=error_responses(503),
)
async def readyz(registry: RegistryDep, settings: SettingsDep, request: Request) -> dict[str, object]:
    registry.check_files()
    named = key_given(settings, request.headers.get("authorization"))
    problem = registry.problem
    if problem is not None:
        raise Unavailable(None, READY, problem if named else "not ready (the reason names models: ask with the key)")
    if not named:
        return {"status": "ready"}
    degraded = {name: why for name in registry.models if (why := registry.model_problem(name)) is not None}
    return {"status": "ready", "models": list(registry.models), "default": registry.default, "degraded": degraded}


@guarded_router.get(
    "/readyz/{name}",
    summary="One model serves, its files intact; 503 naming what is wrong (it may still serve from memory)",
    responses=error_responses(404, 422, 503),
)
async def model_ready(name: str, registry: RegistryDep, request: Request) -> dict[str, str]:
    registry.check_files()
    model = registry.get(name)
    request.state.model = model.name
    problem = registry.model_problem(model.name)
    if problem is not None:
        raise Unavailable("model", f"{model.name} serving with its files intact", problem)
    return {"model": model.name, "status": "ready"}


@guarded_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
