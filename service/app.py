"""The application factory: settings, lifespan (models in, models out), middleware and routers.

uvicorn --factory service.app:create_app      # or: disentangle-serve --model-dir models
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from service.admission import Admission
from service.budgets import body_budgets
from service.cors import ShapedCORS
from service.deadlines import BodyDeadline
from service.dependencies import require_api_key
from service.disconnects import install_disconnect_handler
from service.errors import error_responses, install_error_handlers
from service.fastpath import FastRoutes
from service.liveness import Liveness
from service.metrics import Metrics
from service.middleware import RequestContext
from service.registry import load_registry
from service.routes import admin, decode, docs, edit, encode, health, models, synthesize, traverse
from service.security import TrustedHosts
from service.settings import Settings

STATIC = Path(__file__).parent / "static"
GIL_SWITCH_S = 0.001


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The event loop and the inference thread hand the GIL back and forth several times per request; with
        # Python's default 5 ms switch interval a busy loop keeps the inference thread waiting whole slices.
        sys.setswitchinterval(GIL_SWITCH_S)
        pool = ThreadPoolExecutor(settings.inference_threads, thread_name_prefix="inference")
        app.state.pool = pool
        app.state.registry = load_registry(settings, pool, metrics)
        liveness = None
        if settings.health_port is not None:
            liveness = Liveness(settings.host, settings.health_port, settings.health_stale_s)
            liveness.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            if liveness is not None:
                liveness.stop()
            await app.state.registry.close()
            pool.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(
        title="disentangle",
        summary="Encode images into disentangled latent factors and synthesise images from them.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by routes/docs.py from local files instead of a CDN
        redoc_url=None,
        # Metrics are ours (Prometheus, /metrics). FastAPI's OpenTelemetry hooks would look up the global
        # providers, environment variables included, on every request even with none configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.upload_slots = asyncio.Semaphore(settings.upload_slots)
    app.state.reload_lock = asyncio.Lock()
    install_error_handlers(app)
    install_disconnect_handler(app)

    # Without a key the check is left out entirely rather than run as a no-op on every request.
    guarded = [Depends(require_api_key)] if settings.api_key is not None else []
    # Routes are matched in order, so the busiest go first.
    # Every route may answer 400 (an untrusted Host) and 500; guarded ones 401.
    common = error_responses(400, 500, *([401] if guarded else []))
    for resource in (decode, encode, traverse, synthesize, edit, models, admin):
        app.include_router(resource.router, dependencies=guarded, responses=common)
    app.include_router(health.router, responses=error_responses(400, 500))
    app.include_router(health.guarded_router, dependencies=guarded, responses=common)
    app.include_router(docs.router)
    app.mount(docs.ASSETS_PATH, StaticFiles(directory=docs.ASSETS), name="docs-assets")

    index = STATIC / "index.html"
    if index.is_file():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return FileResponse(index) if index.is_file() else RedirectResponse("/docs")

    if settings.fast_paths:
        # Added first, so it is innermost: the middleware below wraps the fast paths like every route.
        app.add_middleware(FastRoutes, owner=app, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            ShapedCORS,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept", "X-Shape", "X-Request-ID"],
            expose_headers=["X-Request-ID", "X-Shape", "X-Latent", "X-Traverse-Dims", "X-Traverse-Ranges"],
        )
    app.add_middleware(Admission, limit=settings.admission_limit, backlog=settings.admission_backlog, metrics=metrics)
    hosts = TrustedHosts(settings.trusted_hosts, settings.host)
    app.add_middleware(
        RequestContext,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        hosts=hosts,
        access_log=settings.access_log,
        budgets=body_budgets(settings),
    )
    app.add_middleware(
        BodyDeadline,
        timeout_s=settings.body_timeout_s,
        min_rate=settings.body_min_rate,
        grace_s=settings.body_grace_s,
        total_s=settings.body_total_s,
    )
    return app
