"""Where one request's time goes, layer by layer, in process: the model call that bench/serve_load.py takes as
its ceiling, then the route's own code around it, then the whole ASGI app (middleware, metrics, access log)
without a server. What serving over loopback adds on top is serve_load's "CPU time per request" less the last
column here (and bench/uvicorn_floor.py: the same for a bare ASGI function).

    python bench/request_layers.py          # about 30 s

Each layer runs the same request alternately with the others, 5 repeats of 2,000 calls, on one event loop;
printed as median (range) microseconds per request, and each layer's increment over the one inside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from serve_load import BOUNDARY, DEFAULT_MODEL, _multipart, _one_png, ceiling_calls  # noqa: E402

from service.app import create_app  # noqa: E402
from service.logs import configure_logging  # noqa: E402
from service.payloads import Call  # noqa: E402
from service.routes import decode, encode  # noqa: E402
from service.settings import Settings  # noqa: E402

Layer = Callable[[], Awaitable[None]]


def requests(artifact: Path) -> dict[str, tuple[str, str, bytes, dict[str, str]]]:
    """Per case: the ceiling call it compares with, the path, the body and the headers (as serve_load sends)."""
    latent = b'{"latents": [[0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.9, -1.0]]}'
    upload = _multipart(_one_png(artifact))
    return {
        "decode 1 latent -> PNG": (
            "/decode 1",
            "/decode",
            latent,
            {"content-type": "application/json", "accept": "image/png"},
        ),
        "encode 1 PNG multipart": (
            "/encode",
            "/encode",
            upload,
            {"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        ),
    }


def app_layer(app: Any, path: str, body: bytes, headers: dict[str, str]) -> Layer:
    """The whole ASGI app, as uvicorn would call it, answering into a list."""
    raw = [(b"host", b"127.0.0.1")] + [(k.encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def call() -> None:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "root_path": "",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": raw,
            "state": {},
        }
        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"{path} answered {sent[0]['status']}: {sent[-1].get('body', b'')[:300]!r}")

    return call


def route_layer(app: Any, path: str, body: bytes, headers: dict[str, str]) -> Layer:
    """The route's own code (what the fast path calls): parsing, validation, the batcher, the reply."""
    handler = {"/decode": decode.decode_call, "/encode": encode.encode_call}[path]
    state = app.state
    headers = headers | {"content-length": str(len(body))}

    async def read() -> bytes:
        return body

    async def call() -> None:
        await handler(Call(headers, {}, read, {}, state), state.registry, state.settings)

    return call


def ceiling_layer(call: Callable[[], object]) -> Layer:
    async def run() -> None:
        call()

    return run


async def per_call_us(layer: Layer, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await layer()
    return (time.perf_counter() - start) / calls * 1e6


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


async def measure(model_dir: Path, repeats: int, calls: int) -> None:
    artifact = model_dir / DEFAULT_MODEL
    app = create_app(Settings(model_dir=model_dir, default_model=DEFAULT_MODEL))
    ceilings = ceiling_calls(artifact)
    print("| case | ceiling (model call) us | route code us | whole app us | route - ceiling | app - route |")
    print("|---|---:|---:|---:|---:|---:|")
    async with app.router.lifespan_context(app):
        for name, (key, path, body, headers) in requests(artifact).items():
            layers = [
                ceiling_layer(ceilings[key]),
                route_layer(app, path, body, headers),
                app_layer(app, path, body, headers),
            ]
            times: list[list[float]] = [[] for _ in layers]
            for layer in layers:  # warm-up, and a check that each answers
                for _ in range(200):
                    await layer()
            for _ in range(repeats):
                for layer, seen in zip(layers, times, strict=True):
                    seen.append(await per_call_us(layer, calls))
            ceiling, route, whole = times
            route_extra = [r - c for r, c in zip(route, ceiling, strict=True)]
            app_extra = [a - r for a, r in zip(whole, route, strict=True)]
            cells = [spread(ceiling), spread(route), spread(whole), spread(route_extra), spread(app_extra)]
            print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="requests per layer and repeat")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    # The service's default: access log on, written by its background thread (to nowhere here).
    configure_logging("info", stream=open(os.devnull, "w"))  # lives as long as the process
    asyncio.run(measure(args.model_dir, args.repeats, args.calls))


if __name__ == "__main__":
    main()
