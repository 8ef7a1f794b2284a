"""Refusals from below the app, in the one error shape with the security headers: header limits (431),
two Host headers, bytes the HTTP parser cannot read, refused CORS preflights, headers that never end. Real
sockets against a real `disentangle-serve`."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from service_harness import copy_artifact, serve

ORIGIN = "http://page.test"
MAX_HEADERS = 32
MAX_HEADER_BYTES = 8192
TIMEOUT_S = 1.0
WAIT_S = 30.0  # how long a test waits for the server to answer or close: far beyond TIMEOUT_S


@pytest.fixture(scope="module")
def url(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("service-refusals") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    settings = {"max_headers": MAX_HEADERS, "max_header_bytes": MAX_HEADER_BYTES, "cors_origins": ORIGIN}
    with serve(root, header_timeout_s=TIMEOUT_S, **settings) as base:
        yield base


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=WAIT_S)


def exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes the connection (a timeout fails the test)."""
    with connect(url) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):  # refused before it was all sent
            pass
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:  # closed with unread bytes from us: what was answered still came first
        pass
    return received


def shaped(answer: bytes, status: int) -> dict[str, object]:
    """The error body of a raw answer, after checking its status, its shape and its headers."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert int(lines[0].split()[1]) == status, answer[:300]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["content-type"] == "application/json", headers
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY", headers
    assert "default-src 'self'" in headers["content-security-policy"], headers
    error = json.loads(body)
    assert set(error) >= {"detail", "field", "expected", "received"}, error
    return error


def request(*headers: str, target: str = "/healthz") -> bytes:
    return (f"GET {target} HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode()


def test_a_megabyte_header_is_a_431_before_it_is_read(url: str) -> None:
    error = shaped(exchange(url, request("Host: 127.0.0.1", "X-Big: " + "a" * (1 << 20))), 431)
    assert error["field"] == "headers" and f"at most {MAX_HEADER_BYTES} bytes" in str(error["expected"])
    # The same over many small lines, and too many lines of a few bytes each.
    many = [f"X-Part-{k}: " + "b" * 200 for k in range(60)]
    assert shaped(exchange(url, request("Host: 127.0.0.1", *many[:30], *many[30:])), 431)["field"] == "headers"
    lines = [f"X-{k}: 1" for k in range(MAX_HEADERS + 1)]
    error = shaped(exchange(url, request("Host: 127.0.0.1", *lines)), 431)
    assert f"at most {MAX_HEADERS} header lines" in str(error["expected"])
    # Within the limits, and after all that, the service answers as ever.
    assert httpx.get(f"{url}/healthz", headers={f"X-{k}": "1" for k in range(MAX_HEADERS - 8)}).status_code == 200


def test_two_host_headers_are_refused(url: str) -> None:
    error = shaped(exchange(url, request("Host: 127.0.0.1", "Host: evil.test")), 400)
    assert error["field"] == "Host" and error["expected"] == "one Host header"


def test_bytes_the_parser_cannot_read_get_the_error_shape_not_plain_text(url: str) -> None:
    for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET\r\n\r\n"):
        error = shaped(exchange(url, garbage), 400)
        assert error["expected"] == "a well-formed HTTP/1.1 request", error


def test_refused_cors_preflights_are_in_the_error_shape(url: str) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = httpx.options(f"{url}/decode", headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    for headers, field in (
        ({"Origin": "http://elsewhere.test", **preflight}, "Origin"),
        ({"Origin": ORIGIN, **preflight, "Access-Control-Request-Method": "DELETE"}, "Access-Control-Request-Method"),
        (
            {"Origin": ORIGIN, **preflight, "Access-Control-Request-Headers": "x-secret"},
            "Access-Control-Request-Headers",
        ),
    ):
        refused = httpx.options(f"{url}/decode", headers=headers)
        assert refused.status_code == 400 and refused.headers["content-type"] == "application/json"
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert refused.json()["field"] == field, refused.text
        assert refused.headers.get("access-control-allow-origin") == (None if field == "Origin" else ORIGIN)


def test_connections_stuck_in_large_headers_are_answered_408_and_closed(url: str) -> None:
    with ExitStack() as stack:
        stuck = []
        for _ in range(50):
            sock = stack.enter_context(connect(url))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * (MAX_HEADER_BYTES // 2))
            stuck.append(sock)
        assert httpx.get(f"{url}/healthz", timeout=WAIT_S).status_code == 200
        for sock in stuck:
            assert shaped(read_until_closed(sock), 408)["field"] == "headers"
