"""Read deadlines: a client that stops sending in the middle of a request loses its connection.

uvicorn times out idle keep-alive connections but nothing else: a connection that sends half its headers, or
half its body, and then nothing, stays open for good (and keeps a shutdown waiting for it). Two layers
close that gap:

* ``deadline_protocol`` subclasses uvicorn's httptools protocol: from the moment a connection opens (or a
  new request on it begins), its headers must be complete within ``header_timeout_s``, else the connection
  gets a 408 and is closed. It also closes a connection whose client stalls in a body that no request is
  reading any more (the answer went out before the body was complete).
* ``BodyDeadline`` (ASGI) gives each read of the body ``body_timeout_s``: a request whose client sends
  nothing for that long while the route waits for its body is answered 408 and its connection closed.

The body deadline is idle time between chunks, not a total: a large upload over a slow link goes on as long
as bytes keep coming. Time that the service itself spends not reading (flow control while a route is busy)
never counts against the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import Rejected
from service.refusals import raw_refusal


def _late_headers(timeout_s: float) -> bytes:
    return raw_refusal(
        Rejected(408, "headers", f"complete request headers within {timeout_s:g} s", "an incomplete request")
    )


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
    """Each read of a request body must bring something within ``timeout_s``; else a 408 and the connection
    closes (the rest of the body would otherwise be read as the next request)."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False
        loop = asyncio.get_running_loop()

        async def receive_in_time() -> Message:
            nonlocal complete
            if complete:  # later reads only wait for the disconnect, e.g. while a response streams
                return await receive()
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

            timer = loop.call_later(self.timeout_s, expire)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if expired and task.uncancel() == 0:  # our cancellation, and nobody else's pending
                    raise self._late() from None
                raise
            finally:
                timer.cancel()
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)

    def _late(self) -> Rejected:
        expected = f"the next part of the body within {self.timeout_s:g} s"
        return Rejected(408, "body", expected, "nothing", headers={"Connection": "close"})
