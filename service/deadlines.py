"""Read deadlines: a client that stops sending in the middle of a request loses its connection.

uvicorn times out idle keep-alive connections but nothing else: a connection that sends half its headers, or
half its body, and then nothing, stays open for good (and keeps a shutdown waiting for it). Two layers
close that gap:

* ``deadline_protocol`` subclasses uvicorn's httptools protocol: from the moment a connection opens (or a
  new request on it begins), its headers must be complete within ``header_timeout_s``, else the connection
  gets a 408 and is closed. It also closes a connection whose client stalls in a body that no request is
  reading any more (the answer went out before the body was complete).
* ``BodyDeadline`` (ASGI) gives each read of the body ``body_timeout_s``, and the body as a whole a minimum
  rate after a grace period and a total deadline: a client that sends nothing for that long, or trickles its
  body a byte at a time, is answered 408 and its connection closed.

Time that the service itself spends not reading (flow control while a route is busy, a request waiting for
admission) never counts against the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import Rejected, TooSlow
from service.refusals import raw_refusal


def _late_headers(timeout_s: float) -> bytes:
    return raw_refusal(TooSlow("headers", f"complete request headers within {timeout_s:g} s", "an incomplete request"))


def deadline_protocol(header_timeout_s: float, body_timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a header deadline and an idle deadline on unread bodies."""
    late_headers = _late_headers(header_timeout_s)

    class DeadlineProtocol(HttpToolsProtocol):
        _timer: asyncio.TimerHandle | None = None

        def _arm(self, seconds: float, then: Callable[[], None]) -> None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(seconds, then)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(header_timeout_s, self._headers_late)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._timer is None:  # a new request on a kept-alive connection; a fresh one is already timed
                self._arm(header_timeout_s, self._headers_late)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            self._arm(body_timeout_s, self._body_late)

        def on_body(self, body: bytes) -> None:
            super().on_body(body)
            self._arm(body_timeout_s, self._body_late)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()

        def _headers_late(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:  # no answer is being written: say why
                self.transport.write(late_headers)
            self.transport.close()

        def _body_late(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            # While the route still works on the request, BodyDeadline answers a stalled body with a 408; and
            # while the protocol itself stopped reading (flow control), the client is not the one stalling.
            if self.flow.read_paused or (self.cycle is not None and not self.cycle.response_complete):
                self._arm(body_timeout_s, self._body_late)
                return
            self.transport.close()

    return DeadlineProtocol


class BodyDeadline:
    """A body must keep coming while a route reads it: each read must bring something within ``timeout_s``;
    past ``grace_s`` the body must have averaged ``min_rate`` bytes a second; and all of it must be in within
    ``total_s``. Else a 408 naming the rule, and the connection closes (the rest of the body would otherwise be
    read as the next request). The clock starts at the first read, so time the service spends not reading
    (waiting for admission or an upload slot) never counts against the client, and bytes that arrived
    meanwhile count for it."""

    def __init__(self, app: ASGIApp, timeout_s: float, min_rate: float = 0.0, grace_s: float = 0.0,
                 total_s: float = float("inf")) -> None:  # fmt: skip
        self.app = app
        self.timeout_s = timeout_s
        self.min_rate = min_rate
        self.grace_s = grace_s
        self.total_s = total_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False
        loop = asyncio.get_running_loop()
        started: float | None = None
        received = 0

        async def receive_in_time() -> Message:
            nonlocal complete, started, received
            if complete:  # later reads only wait for the disconnect, e.g. while a response streams
                return await receive()
            now = loop.time()
            if started is None:
                started = now
            elapsed = now - started
            if elapsed > self.grace_s and received < self.min_rate * elapsed:
                raise self._slow(received, elapsed)
            wait = min(self.timeout_s, self.total_s - elapsed)
            if wait <= 0:
                raise self._overdue()
            # A bare timer rather than asyncio.timeout, which costs about four times as much a read
            # (bench/hot_path_parts.py): most bodies are in by the time the route reads them, and the timer is
            # cancelled unfired.
            task = asyncio.current_task()
            assert task is not None
            expired = False

            def expire() -> None:
                nonlocal expired
                expired = True
                task.cancel()

            timer = loop.call_later(wait, expire)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if expired and task.uncancel() == 0:  # our cancellation, and nobody else's pending
                    raise (self._late() if wait == self.timeout_s else self._overdue()) from None
                raise
            finally:
                timer.cancel()
            received += len(message.get("body", b""))
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)

    @staticmethod
    def _cut(expected: str, received: str) -> Rejected:
        return TooSlow("body", expected, received, headers={"Connection": "close"})

    def _late(self) -> Rejected:
        return self._cut(f"the next part of the body within {self.timeout_s:g} s", "nothing")

    def _slow(self, received: int, elapsed: float) -> Rejected:
        expected = f"a body sent at {self.min_rate:g} bytes/s or faster after the first {self.grace_s:g} s"
        return self._cut(expected, f"{received} bytes in {elapsed:.1f} s")

    def _overdue(self) -> Rejected:
        return self._cut(f"the whole body within {self.total_s:g} s", "an unfinished body")
