"""``disentangle-serve``: serve the artifacts in a folder over HTTP.

    disentangle-serve --model-dir models --port 8000
    disentangle-serve --model-dir models --workers 2      # one process per core on a two-core host

Flags override the matching DISENTANGLE_* environment variables; every other setting comes from those.
With ``--workers N`` (DISENTANGLE_WORKERS) uvicorn starts N processes that share the port, each loading every
model and running its own event loop and inference thread: the HTTP work, which one loop cannot spread over
cores, then uses them all.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn
from pydantic import ValidationError
from starlette.types import ASGIApp

from service.cpus import available_cpus
from service.errors import validation_body
from service.logs import configure_logging
from service.settings import Settings


def _serve(app: ASGIApp | str, settings: Settings, workers: int | None = None) -> None:
    uvicorn.run(
        app,
        factory=isinstance(app, str),
        workers=workers,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # RequestContext writes one structured line per request instead
        server_header=False,
        # Nothing here reads client addresses; parsing X-Forwarded-* would be one more layer per request.
        proxy_headers=False,
    )


def worker_app() -> ASGIApp:
    """The app of one worker process (``uvicorn --factory service.cli:worker_app``), configured from the
    environment, which ``main`` has filled in from its flags."""
    from service.app import create_app

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="disentangle-serve", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", help="folder of artifact folders (DISENTANGLE_MODEL_DIR)")
    parser.add_argument("--host", help="address to bind (DISENTANGLE_HOST)")
    parser.add_argument("--port", type=int, help="port to bind (DISENTANGLE_PORT)")
    parser.add_argument(
        "--workers", type=int, help="server processes (DISENTANGLE_WORKERS, default 1; 0 = one per CPU)"
    )
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        print(
            f"disentangle-serve: invalid settings: {validation_body(error.errors())['detail']}",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level)
    workers = settings.workers or available_cpus()
    if workers == 1:
        # Imported here: with workers, the supervisor process never builds an app and stays small.
        from service.app import create_app

        _serve(create_app(settings), settings)
    else:
        # Worker processes build their own app from the environment, so the flags travel there.
        os.environ.update({f"DISENTANGLE_{k.upper()}": str(v) for k, v in overrides.items()})
        _serve("service.cli:worker_app", settings, workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
