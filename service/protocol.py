"""The HTTP protocol the service runs under uvicorn: its httptools protocol with the read deadlines
(service/deadlines.py), limits on request headers, and every refusal of its own in the error shape.

Headers are held in memory until they are complete, so their size is limited before anything else runs: at
most ``max_headers`` header lines and ``max_header_bytes`` from the request line to the blank line (431),
counted as the bytes arrive, so that a client sending a megabyte of header never gets it buffered. With the
header deadline this bounds what a connection stuck in its headers holds: ``max_header_bytes`` for at most
``header_timeout_s``. A request with two Host headers is refused (400): the service checks one against the
trusted names, and a proxy in front may have read the other.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.deadlines import deadline_protocol
from service.errors import HeadersTooLarge, Malformed, Rejected
from service.refusals import raw_refusal
from service.settings import Settings

MALFORMED = Malformed(None, "a well-formed HTTP/1.1 request", "bytes the HTTP parser cannot read")


class _Refused(Exception):
    """Raised from a parser callback: httptools stops parsing, and uvicorn calls ``send_400_response``."""


def service_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    max_bytes, max_count = settings.max_header_bytes, settings.max_headers
    too_many = HeadersTooLarge("headers", f"at most {max_count} header lines", "more")
    too_large = HeadersTooLarge("headers", f"request line and headers of at most {max_bytes} bytes", "more")
    two_hosts = Malformed("Host", "one Host header", "several")

    class ServiceProtocol(deadline_protocol(settings.header_timeout_s, settings.body_timeout_s)):  # type: ignore[misc]
        _heading = True  # between the start of a request and the end of its headers
        _head_bytes = 0
        _count = 0
        _host = False
        _refusal: Rejected | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._next_request()

        def _next_request(self) -> None:
            self._heading, self._head_bytes, self._count, self._host = True, 0, 0, False

        def data_received(self, data: bytes) -> None:
            if self._heading:
                self._head_bytes += len(data)
            super().data_received(data)
            # Still in the headers after all of this: every byte counted was header.
            if self._heading and self._head_bytes > max_bytes and not self.transport.is_closing():
                self._refuse(too_large)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count += 1
            if self._count > max_count:
                self._refuse_later(too_many)
            if len(name) + len(value) > max_bytes:
                self._refuse_later(too_large)
            if name.lower() == b"host":
                if self._host:
                    self._refuse_later(two_hosts)
                self._host = True
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._heading = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._next_request()

        def _refuse_later(self, error: Rejected) -> None:
            self._refusal = error
            raise _Refused(error.message)

        def send_400_response(self, msg: str) -> None:
            # uvicorn calls this for whatever its parser refused: a callback's _Refused above, or bad bytes.
            self._refuse(self._refusal or MALFORMED)

        def _refuse(self, error: Rejected) -> None:
            self.transport.write(raw_refusal(error))
            self.transport.close()

    return ServiceProtocol
