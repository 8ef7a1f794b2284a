"""Clients that stall: connections stuck in their headers or their body are closed, and a SIGTERM ends the
process with exit code 0 whatever such clients do. Real sockets against a real `disentangle-serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from service_harness import REPO, copy_artifact, free_port, wait_until_answering

TIMEOUT_S = 1.0  # the server's header and body deadlines in these tests
STALLED = 100  # connections of each kind
WAIT_S = 30.0  # how long a test waits for the server to close a connection: far beyond TIMEOUT_S


@contextmanager
def server(model_dir: Path, **settings: object) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")}
    env |= {f"DISENTANGLE_{k.upper()}": str(v) for k, v in settings.items()} | {"DISENTANGLE_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "service.cli", "--model-dir", str(model_dir), "--port", str(port)]
    process = subprocess.Popen(command, cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url, "/healthz", lambda: None if process.poll() is None else "exited", 60)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def model_dir(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("service-deadlines") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    return root


def connect(url: str, first_bytes: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT_S)
    sock.sendall(first_bytes)
    return sock


def mid_headers(url: str) -> socket.socket:
    return connect(url, b"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n")


def mid_body(url: str, path: str = "/decode") -> socket.socket:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    return connect(url, head.encode() + b'{"latents": [[0.0, ')


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout here fails the test)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def error_of(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_connections_stalled_in_headers_or_body_are_answered_408_and_closed(model_dir: Path) -> None:
    with server(model_dir, header_timeout_s=TIMEOUT_S, body_timeout_s=TIMEOUT_S) as (url, _), ExitStack() as stack:
        stalled = [stack.enter_context(mid_headers(url)) for _ in range(STALLED)]
        stalled += [stack.enter_context(mid_body(url)) for _ in range(STALLED)]
        # Stalled clients cost the others nothing.
        assert httpx.post(f"{url}/decode", json={"latents": [[0.0] * 10]}, timeout=WAIT_S).status_code == 200
        answers = [read_until_closed(sock) for sock in stalled]
        for answer in answers[:STALLED]:
            status, body = error_of(answer)
            assert status == 408 and body["field"] == "headers", body
        for answer in answers[STALLED:]:
            status, body = error_of(answer)
            assert status == 408 and body["field"] == "body", body
            assert b"connection: close" in answer.lower()
        # A connection that opens and sends nothing at all is closed too.
        with connect(url, b"") as idle:
            assert error_of(read_until_closed(idle))[0] == 408
        assert httpx.get(f"{url}/readyz", timeout=WAIT_S).status_code == 200


def test_a_slow_upload_that_keeps_sending_is_not_cut(model_dir: Path) -> None:
    with server(model_dir, header_timeout_s=TIMEOUT_S, body_timeout_s=TIMEOUT_S) as (url, _):
        body = json.dumps({"latents": [[0.0] * 10]}).encode()
        head = (
            f"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        )
        with connect(url, head.encode() + b"\r\n\r\n") as sock:
            for k in range(0, len(body), 8):  # a few bytes at a time, over about three body deadlines
                sock.sendall(body[k : k + 8])
                time.sleep(3 * TIMEOUT_S / (len(body) / 8))
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_sigterm_exits_0_even_with_stalled_clients(model_dir: Path) -> None:
    with (
        server(model_dir, header_timeout_s=TIMEOUT_S, body_timeout_s=TIMEOUT_S, shutdown_timeout_s=2) as (
            url,
            process,
        ),
        ExitStack() as stack,
    ):
        for _ in range(20):
            stack.enter_context(mid_headers(url))
            stack.enter_context(mid_body(url))
            stack.enter_context(mid_body(url, "/encode"))
        assert httpx.get(f"{url}/healthz", timeout=WAIT_S).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT_S) == 0


def test_sigterm_answers_a_request_still_running_at_the_deadline_503_and_exits_0(model_dir: Path) -> None:
    # A body that keeps coming (above the minimum rate, within the total deadline) keeps its request running.
    settings = {"shutdown_timeout_s": 1, "body_min_rate": 10, "body_total_s": 60}
    with server(model_dir, **settings) as (url, process), mid_body(url) as sock:
        for _ in range(5):
            sock.sendall(b"0.0, ")
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        for _ in range(15):  # the client goes on sending while the service shuts down
            try:
                sock.sendall(b"0.0, ")
            except OSError:
                break
            time.sleep(0.2)
        answer = read_until_closed(sock)
        assert process.wait(timeout=WAIT_S) == 0
    status, body = error_of(answer)
    assert status == 503 and body["received"] == "the service is shutting down", body
    assert b"retry-after: 1" in answer.lower()
