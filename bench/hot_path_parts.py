"""What single pieces of a request cost the event loop, each beside the way it was done before, in one run.

    python bench/hot_path_parts.py          # about 30 s

Each pair is timed alternately, 5 repeats of enough calls to take ~0.2 s; printed as median (range) per call
and the ratio new / old within each repeat. These are the figures docs/service.md quotes for the hot-path work.
"""

from __future__ import annotations

import asyncio
import io
import logging
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from serve_load import BOUNDARY, DEFAULT_MODEL, _multipart, _one_png  # noqa: E402

from service.forms import parse_form  # noqa: E402
from service.logs import ACCESS_LOGGER, AccessEntry, BatchedWriter, JsonFormatter, log_access  # noqa: E402
from service.metrics import Metrics  # noqa: E402

REPEATS = 5


def per_call_us(fn: Callable[[], object]) -> float:
    number, _ = timeit.Timer(fn).autorange()
    return min(timeit.repeat(fn, number=number, repeat=1)) / number * 1e6


def compare(name: str, old: Callable[[], object], new: Callable[[], object]) -> None:
    olds, news = [], []
    for _ in range(REPEATS):
        olds.append(per_call_us(old))
        news.append(per_call_us(new))
    ratios = [n / o for n, o in zip(news, olds, strict=True)]

    def spread(xs: list[float], fmt: str) -> str:
        return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"

    print(f"| {name} | {spread(olds, '{:.1f}')} | {spread(news, '{:.1f}')} | {spread(ratios, '{:.2f}')} |")


def access_log() -> tuple[Callable[[], object], Callable[[], object]]:
    """A LogRecord per request (before) against the queued tuple (now), both into a writer that never flushes."""
    writer = BatchedWriter(io.StringIO(), interval_s=3600)
    writer.setFormatter(JsonFormatter())
    logging.root.handlers[:] = [writer]
    logging.root.setLevel(logging.INFO)
    import service.logs as logs

    logs._writer = writer
    log = logging.getLogger(ACCESS_LOGGER)
    extra = {"status": 200, "endpoint": "/decode", "model": "m", "ms": 0.5}

    def record() -> None:
        log.handle(
            log.makeRecord(log.name, logging.INFO, "", 0, "%s %s %d", ("POST", "/decode", 200), None, extra=extra)
        )

    def entry() -> None:
        log_access(AccessEntry(time.time(), "rid", "POST", "/decode", 200, "/decode", "m", 0.0005))

    def drained(fn: Callable[[], None]) -> Callable[[], None]:
        def call() -> None:
            fn()
            writer._records.clear()  # the writer thread's work, not the loop's

        return call

    return drained(record), drained(entry)


def metrics() -> tuple[Callable[[], object], Callable[[], object]]:
    m = Metrics()
    requests, latency = m.requests.labels("/decode", "m", "200"), m.latency.labels("/decode", "m")

    def labelled() -> None:
        m.requests.labels("/decode", "m", "200").inc()
        m.latency.labels("/decode", "m").observe(0.0005)

    def cached() -> None:
        requests.inc()
        latency.observe(0.0005)

    return labelled, cached


def body_timer() -> tuple[Callable[[], object], Callable[[], object]]:
    """One body read under asyncio.timeout (before) and under a bare loop timer (now), on an uvloop loop."""
    import uvloop

    loop = uvloop.new_event_loop()

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"x"}

    async def with_timeout() -> None:
        async with asyncio.timeout(10):
            await receive()

    async def with_timer() -> None:
        timer = loop.call_later(10, lambda: None)
        try:
            await receive()
        finally:
            timer.cancel()

    def runs(coro: Callable[[], object]) -> Callable[[], object]:
        async def many() -> None:
            for _ in range(1000):
                await coro()  # type: ignore[misc]

        return lambda: loop.run_until_complete(many())

    return runs(with_timeout), runs(with_timer)


def multipart() -> tuple[Callable[[], object], Callable[[], object]]:
    body = _multipart(_one_png(REPO / "models" / DEFAULT_MODEL))
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return (
        lambda: parse_form(content_type, body, 64, 72, plain=False),
        lambda: parse_form(content_type, body, 64, 72),
    )


def main() -> None:
    print("| piece | before, us per call | now, us per call | now / before |")
    print("|---|---:|---:|---:|")
    compare("access-log line (LogRecord -> queued tuple)", *access_log())
    compare("request metrics (labels() -> cached children)", *metrics())
    timeout, timer = body_timer()
    compare("1,000 body reads (asyncio.timeout -> bare timer)", timeout, timer)
    compare("one-PNG multipart upload (python-multipart -> plain split)", *multipart())


if __name__ == "__main__":
    main()
