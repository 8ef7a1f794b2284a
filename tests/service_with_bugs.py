"""The real application with two routes that fail the way a bug of ours would, for the 500 contract.

Not a test module: tests/test_service_errors.py serves ``create_app`` with uvicorn (service_harness.serve).
"""

from __future__ import annotations

from fastapi import FastAPI

from service.app import create_app as create_service
from service.logs import configure_logging
from service.schemas import ModelInfo
from service.settings import Settings

SECRET = "internal detail that must stay in the log"


def create_app() -> FastAPI:
    settings = Settings()
    configure_logging(settings.log_level)
    app = create_service(settings)

    @app.get("/bug/crash", include_in_schema=False)
    async def crash() -> None:
        raise RuntimeError(SECRET)

    @app.get("/bug/validation", include_in_schema=False)
    async def validation() -> ModelInfo:
        # Our own code building a response from data that does not fit its schema: a bug, not a bad request.
        return ModelInfo.model_validate({"name": SECRET})

    return app
