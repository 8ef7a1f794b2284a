"""``disentangle-serve``: serve the artifacts in a folder over HTTP.

    disentangle-serve --model-dir models --port 8000
    disentangle-serve --model-dir models --workers 2      # one process per core on a two-core host

Flags override the matching DISENTANGLE_* environment variables; every other setting comes from those.
With ``--workers N`` (DISENTANGLE_WORKERS; 0 = one per CPU this process may use) N processes share the port,
each loading every model and running its own event loop and inference thread: the HTTP work, which one event
loop cannot spread over cores, then uses them all. They are forked from this process once it has imported
the app's code (service/workers.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from pydantic import ValidationError
from starlette.types import ASGIApp

from service.app import create_app
from service.cpus import available_cpus
from service.errors import shown
from service.logs import configure_logging, flush_logs
from service.protocol import service_protocol
from service.settings import PREFIX, Settings
from service.workers import supervise


def settings_problem(error: ValidationError) -> str:
    """Each failed setting named by its environment variable, with what it needs and what it got."""
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


def _config(app: ASGIApp, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # RequestContext writes one structured line per request instead
        server_header=False,
        # Nothing here reads client addresses; parsing X-Forwarded-* would be one more layer per request.
        proxy_headers=False,
        http=service_protocol(settings),
        # uvicorn waits for every connection to finish on shutdown; this bounds the wait (typed int, takes float).
        timeout_graceful_shutdown=settings.shutdown_timeout_s,  # type: ignore[arg-type]
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
    # The app is built here; its models load in its lifespan, which each worker runs for itself.
    config = _config(create_app(settings), settings)
    if workers == 1:
        Server(config).run()
        return 0
    config.load()  # uvicorn's protocol and event-loop classes too, before the fork rather than in each worker
    sockets = [config.bind_socket()]
    return supervise(workers, lambda: Server(config).run(sockets), settings.shutdown_timeout_s, flush_logs)


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
