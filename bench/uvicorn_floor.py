"""The latency floor of one decode at concurrency 1, layer by layer: what loopback and wrk cost with no work at
all, what uvicorn adds, what the model call loses by running after an idle wait rather than in a tight loop,
and what the service adds on top. Issue 15 asks for a p50 within 0.15 ms of the in-process time; this shows
how much of that the layers below the service already take.

    python bench/uvicorn_floor.py                  # about 2 minutes; needs wrk (apt-get install -y wrk)
    python bench/uvicorn_floor.py --serve KIND --port PORT     # (internal) one of the bare servers

Six layers, taking turns slice by slice within each repeat (so the machine's other load falls on all alike),
the servers and the in-process loops on the same CPUs and wrk (one connection) on a CPU of its own, as in
bench/serve_load.py:
  in process        the model call and the PNG writer in a tight loop (serve_load's ceiling p50)
  in process, idle  the same call, each after sleeping about as long as a request is away on loopback
  raw protocol      an asyncio protocol on uvloop (httptools parser) answering a canned PNG-sized body
  uvicorn           a bare ASGI function under the service's uvicorn setup, the same canned body
  uvicorn + model   the bare ASGI function running the model call and the PNG writer
  service           disentangle-serve at its defaults, POST /decode of one latent, Accept: image/png
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from serve_load import DEFAULT_MODEL, Case, cases, process, service_command, split_cpus, spread, wrk  # noqa: E402

from contract.images import to_pixels  # noqa: E402
from contract.manifest import DECODER_FILE, read_manifest  # noqa: E402
from service.imaging import png  # noqa: E402
from service.runtime import open_session  # noqa: E402
from service.settings import Settings  # noqa: E402

ARTIFACT = REPO / "models" / DEFAULT_MODEL
MS = "{:.3f}"
GOAL_MS = 0.15  # issue 15: the c=1 p50 within this of the in-process time
BARE = ("raw", "uvicorn", "uvicorn+model")


def decode_png() -> Callable[[], bytes]:
    """The one call every layer makes: a fixed latent through the decoder, then the PNG writer."""
    decoder = open_session(ARTIFACT / DECODER_FILE, Settings(model_dir=ARTIFACT.parent))
    z = np.random.default_rng(0).normal(size=(1, read_manifest(ARTIFACT).latent_dim)).astype(np.float32)
    return lambda: png(to_pixels(decoder.run(None, {"z": z})[0])[0])


# --- the bare servers ---------------------------------------------------------------------------------------


def serve_raw(port: int, body: bytes) -> None:
    """No framework at all: parse with httptools, answer every complete request with one canned write."""
    import httptools
    import uvloop

    answer = b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)

    class Canned(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:  # uvloop's transports are not asyncio.Transport
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            self.transport.write(answer)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


def serve_asgi(port: int, answer: Callable[[], bytes]) -> None:
    """A bare ASGI function under uvicorn as the service runs it (httptools, uvloop, no access log)."""
    import uvicorn

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        body = answer()
        headers = [(b"content-type", b"image/png"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", loop="uvloop", log_level="warning",
                access_log=False, lifespan="off")  # fmt: skip


def serve(kind: str, port: int) -> None:
    call = decode_png()
    canned = call()  # the same bytes the model layers send
    if kind == "raw":
        serve_raw(port, canned)
    else:
        serve_asgi(port, call if kind == "uvicorn+model" else lambda: canned)


# --- the in-process layers ----------------------------------------------------------------------------------


def in_process_p50_ms(call: Callable[[], bytes], seconds: float, idle_s: float = 0.0) -> tuple[float, float]:
    """p50 of ``call`` over ``seconds``, each call after sleeping ``idle_s`` (0: back to back); and the mean
    time actually slept, in ms (a sleep overshoots what it asks for)."""
    times, slept = [], []
    end = time.perf_counter() + seconds
    while (now := time.perf_counter()) < end:
        if idle_s:
            time.sleep(idle_s)
            slept.append(time.perf_counter() - now)
            now = time.perf_counter()
        call()
        times.append(time.perf_counter() - now)
    return 1000 * statistics.median(times), 1000 * statistics.mean(slept) if slept else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured per layer and repeat (default 8)")
    parser.add_argument("--slices", type=int, default=4, help="turns each layer's seconds are split into")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", choices=BARE, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install -y wrk")
    os.environ["OMP_NUM_THREADS"] = "1"
    server_cpus, wrk_cpus = split_cpus(int(len(os.sched_getaffinity(0)) >= 2))
    # This process runs only the in-process loops, on the servers' CPUs; wrk is started on its own.
    os.sched_setaffinity(0, server_cpus)
    slices = max(1, min(args.slices, int(args.seconds)))
    slice_s = float(max(1, round(args.seconds / slices)))  # wrk measures whole seconds
    case = next(c for c in cases(ARTIFACT) if c.name == "decode 1 latent, c=1")
    bare_case = Case("bare", "/", case.body, case.headers, 1, 1)
    call = decode_png()
    p50: dict[str, list[float]] = {}
    slept: list[float] = []
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)

        def bare(kind: str) -> AbstractContextManager[tuple[str, float, int]]:
            command = [sys.executable, __file__, "--serve", kind]
            return process(command, env, workdir / f"{kind}.log", "/", server_cpus)

        with (
            bare("raw") as raw,
            bare("uvicorn") as canned,
            bare("uvicorn+model") as model,
            process(*service_command(REPO / "models", 1), workdir / "service.log", "/readyz", server_cpus) as svc,
        ):
            servers = {
                "raw protocol, canned answer": (raw[0], bare_case),
                "uvicorn, canned answer": (canned[0], bare_case),
                "uvicorn + model call": (model[0], bare_case),
                "service, /decode 1 latent": (svc[0], case),
            }
            for url, request in servers.values():  # warm-up
                wrk(url, request, 1, workdir, wrk_cpus)
            for _ in range(args.repeats):
                taken: dict[str, list[float]] = {}
                for _ in range(slices):
                    for _ in range(200):  # as warm as serve_load's ceiling loop, after the servers' turns
                        call()
                    tight, _ = in_process_p50_ms(call, slice_s)
                    taken.setdefault("in process", []).append(tight)
                    samples = {}
                    for name, (url, request) in servers.items():
                        sample = wrk(url, request, slice_s, workdir, wrk_cpus)
                        if sample.failures:
                            raise RuntimeError(f"{name}: {sample.failures} of its requests failed")
                        samples[name] = sample.p50_ms
                    # Idle about as long as a server waits between requests at c=1: the canned round trip.
                    idle, asleep = in_process_p50_ms(call, slice_s, samples["raw protocol, canned answer"] / 1000)
                    slept.append(asleep)
                    taken.setdefault("in process, idle", []).append(idle)
                    for name, value in samples.items():
                        taken.setdefault(name, []).append(value)
                for name, values in taken.items():
                    p50.setdefault(name, []).append(statistics.median(values))
                print(f"repeat {len(p50['in process'])}/{args.repeats} done", file=sys.stderr)
    report(p50, slept, args, slices, slice_s)


def report(
    p50: dict[str, list[float]], slept: list[float], args: argparse.Namespace, slices: int, slice_s: float
) -> None:
    def less(a: str, b: str) -> list[float]:
        return [x - y for x, y in zip(p50[a], p50[b], strict=True)]

    rows = [
        ("model call + PNG, in process, back to back", "in process", None),
        (f"the same, each after idling {statistics.median(slept):.3f} ms", "in process, idle", "in process"),
        ("loopback + wrk: raw asyncio protocol, canned answer, no work", "raw protocol, canned answer", None),
        ("uvicorn, bare ASGI function, canned answer", "uvicorn, canned answer", "raw protocol, canned answer"),
        ("uvicorn, bare ASGI function, model call + PNG", "uvicorn + model call", "uvicorn, canned answer"),
        ("the service: POST /decode, 1 latent, PNG back", "service, /decode 1 latent", "uvicorn + model call"),
    ]
    print(f"`python bench/uvicorn_floor.py`: p50 at concurrency 1, ms, median (range) of {args.repeats} repeats, "
          f"each layer {slices} turns of {slice_s:g} s; the servers on the CPUs of the in-process loops, wrk on "
          "its own where there are two or more.")  # fmt: skip
    print()
    print("| layer | p50 ms | over the row above |")
    print("|---|---:|---:|")
    for label, key, base in rows:
        print(f"| {label} | {spread(p50[key], MS)} | {spread(less(key, base), MS) if base else ''} |")
    print()
    served = less("uvicorn + model call", "in process")
    print(f"uvicorn + loopback + wrk add {spread(served, MS)} ms to one decode at concurrency 1")
    # loopback and wrk, plus uvicorn, plus what the model call loses after an idle wait
    floor = [u + i for u, i in zip(p50["uvicorn, canned answer"], less("in process, idle", "in process"), strict=True)]
    print(f"Before any of the service's own work, loopback and wrk, uvicorn and the idle model call take "
          f"{spread(floor, MS)} ms of the {GOAL_MS} ms the goal allows over the in-process time; the service adds "
          f"{spread(less('service, /decode 1 latent', 'in process'), MS)} ms.")  # fmt: skip


if __name__ == "__main__":
    main()
