"""``disentangle-serve``: serve the artifacts in a folder over HTTP.

    disentangle-serve --model-dir models --port 8000
    disentangle-serve --model-dir models --workers 2      # one process per core on a two-core host

Flags override the matching DISENTANGLE_* environment variables; every other setting comes from those.
With ``--workers N`` (DISENTANGLE_WORKERS; 0 = one per CPU this process may use) uvicorn starts N processes
that share the port, each loading every model and running its own event loop and inference thread: the HTTP
work, which one event loop cannot spread over cores, then uses them all.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from pydantic import ValidationError
from starlette.types import ASGIApp
from uvicorn.supervisors import Multiprocess

from service.cpus import available_cpus
from service.logs import configure_logging
from service.settings import PREFIX, Settings


def settings_problem(error: ValidationError) -> str:
    """Each failed setting named by its environment variable, with what it needs and what it got."""
    from service.errors import shown  # only on this error path: it imports FastAPI

    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if message.startswith("Input should be "):
            message = "expected " + message.removeprefix("Input should be ")
        if item["loc"]:
            name = PREFIX + "_".join(str(part) for part in item["loc"][:1]).upper()
            problems.append(f"{name}: {message}, received {shown(item.get('input'))}")
        else:  # a check across settings, whose message names the variables itself
            problems.append(message)
    return "; ".join(problems)


# What a worker process imports (by name: uvicorn's workers are spawned, and get their settings from the
# environment, which `main` fills in from its flags).
WORKER_APP = "service.cli:worker_app"
WORKER_PROTOCOL = "service.cli:WorkerProtocol"
WORKER_PING_TIMEOUT_S = 60


def worker_app() -> ASGIApp:
    """The app of one worker process (``uvicorn --factory service.cli:worker_app``)."""
    from service.app import create_app

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def __getattr__(name: str) -> object:
    # The HTTP protocol with the header and body deadlines, built from the environment's settings when a
    # worker imports it: a class made by a function cannot be pickled over to a spawned process.
    if name == "WorkerProtocol":
        from service.deadlines import deadline_protocol

        settings = Settings()
        return deadline_protocol(settings.header_timeout_s, settings.body_timeout_s)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _config(app: ASGIApp | str, http: type | str, settings: Settings, workers: int) -> uvicorn.Config:
    return uvicorn.Config(
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
        http=http,
        # uvicorn waits for every connection to finish on shutdown; this bounds the wait (typed int, takes float).
        timeout_graceful_shutdown=settings.shutdown_timeout_s,  # type: ignore[arg-type]
        # The supervisor kills a worker that does not answer its ping in time, and a worker answers only once
        # its imports are done: uvicorn's 5 s is less than that takes on a busy host, which then kills and
        # restarts its workers for ever.
        timeout_worker_healthcheck=WORKER_PING_TIMEOUT_S,
    )


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
        print(f"disentangle-serve: invalid settings: {settings_problem(error)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    workers = settings.workers or available_cpus()
    if workers == 1:
        # Imported here: with workers, the supervisor process never builds an app, never imports FastAPI, and
        # starts its workers sooner.
        from service.app import create_app
        from service.deadlines import deadline_protocol

        protocol = deadline_protocol(settings.header_timeout_s, settings.body_timeout_s)
        Server(_config(create_app(settings), protocol, settings, 1)).run()
        return 0
    os.environ.update({f"DISENTANGLE_{k.upper()}": str(v) for k, v in overrides.items()})
    config = _config(WORKER_APP, WORKER_PROTOCOL, settings, workers)
    # The supervisor binds the socket, starts the workers, restarts one that dies, and on SIGTERM or SIGINT
    # stops them all (each with its graceful-shutdown deadline) and returns.
    Multiprocess(config, sockets=[config.bind_socket()]).run()
    return 0


class Server(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM or SIGINT it has handled ends the process with exit code 0.

    uvicorn re-raises the signal after its graceful shutdown, so the process dies of it (status 143); a
    stop that went as planned should read as success to an orchestrator or a shell.
    """

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


if __name__ == "__main__":
    sys.exit(main())
