"""Liveness, readiness and Prometheus metrics: open even when an API key is set, for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.dependencies import RegistryDep
from service.errors import Unavailable, error_responses

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Models are loaded, the default among them, no network keeps failing and no loaded model's files "
    "went bad; 503 naming what is wrong otherwise",
    responses=error_responses(503),
)
async def readyz(registry: RegistryDep) -> dict[str, object]:
    registry.check_files()
    problem = registry.problem
    if problem is not None:
        raise Unavailable(None, "at least one loaded model, the default among them", problem)
    return {"status": "ready", "models": list(registry.models), "default": registry.default}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
