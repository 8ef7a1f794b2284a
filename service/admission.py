"""Admission: how many inference requests the app works on at once, and what happens to the rest.

Past the batchers' queues a rejection is not free: the request has been parsed, routed and read, and a
client that retries at once (as load generators and naive clients do) sends it again, so the event loop
spends more and more of its time refusing work and less serving it. Measured before this gate existed:
3,275 answers/s at 256 connections, 629/s at 512, 86% of them 429.

So at most ``limit`` inference requests (POST to the routes that run a network) are inside the app at once;
the next ``backlog`` wait here, in arrival order, before anything is parsed, which costs the loop nothing
while they wait. Only past the backlog is a request refused, with a 429 written straight to the connection,
before its body is read. Health, metrics and model listings are never held.

A place is taken once the body is in, for bodies of at most ``PREREAD_BYTES`` (all but image uploads): a
client that trickles its body a byte at a time then holds a connection, which the body deadlines cut
(service/deadlines.py), but never a place, so a thousand of them cannot fill the gate and lock out the
clients that send whole requests. Those bytes are what uvicorn holds for a connection anyway before it stops
reading, so reading them early costs no memory.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import Busy
from service.metrics import Metrics
from service.payloads import read_body

GATED_PATHS = frozenset({"/encode", "/decode", "/traverse", "/synthesize", "/edit"})
PREREAD_BYTES = 64 << 10  # uvicorn's HIGH_WATER_LIMIT: what it buffers of a body before it pauses reading


def content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _preread(receive: Receive) -> Receive:
    """Read the whole (small) body now; the receive returned hands it on as one message."""
    pending: list[Message] = [{"type": "http.request", "body": await read_body(receive), "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


class Admission:
    def __init__(self, app: ASGIApp, limit: int, backlog: int, metrics: Metrics | None = None) -> None:
        self.app = app
        self.backlog = backlog
        # asyncio's semaphore is fair: a newcomer never overtakes a waiter, and a free place costs no suspension.
        self._places = asyncio.Semaphore(limit)
        self._waiting = 0
        self._admitted = 0
        if metrics is not None:
            metrics.admitted.set_function(lambda: self._admitted)
            metrics.waiting.set_function(lambda: self._waiting)
        error = Busy(
            None,
            f"at most {limit} requests in progress and {backlog} waiting",
            "one more",
            hint="retry shortly",
        )
        self._refusal = json.dumps(error.body()).encode()
        self._status = error.status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in GATED_PATHS:
            await self.app(scope, receive, send)
            return
        if self._waiting >= self.backlog and self._places.locked():
            await self._refuse(send)
            return
        declared = content_length(scope)
        if declared is not None and declared <= PREREAD_BYTES:
            receive = await _preread(receive)
        self._waiting += 1
        try:
            await self._places.acquire()
        finally:
            self._waiting -= 1
        self._admitted += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._admitted -= 1
            self._places.release()

    async def _refuse(self, send: Send) -> None:
        """A 429 written straight out; the unread body is skipped by the HTTP parser, so the connection stays."""
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._refusal)).encode()),
            (b"retry-after", b"1"),
        ]
        await send({"type": "http.response.start", "status": self._status, "headers": headers})
        await send({"type": "http.response.body", "body": self._refusal})
