"""Refusals written straight to a connection, below the ASGI app: the one error shape, the security headers.

uvicorn's own refusals (a request its parser cannot read) are plain text without our headers; the protocol
(service/protocol.py) and the header deadline answer through here instead, so that a client sees one shape
whichever layer refused it.
"""

from __future__ import annotations

from http import HTTPStatus

from service.errors import Rejected, error_bytes
from service.security import PAGE_HEADERS


def raw_refusal(error: Rejected, extra: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A complete HTTP/1.1 response for ``error`` that closes the connection (the rest of what the client sent
    cannot be trusted to be read as the next request)."""
    body = error_bytes(error.body())
    head = [f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}".encode()]
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *PAGE_HEADERS,
        *extra,
    ]
    head += [name + b": " + value for name, value in headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body
