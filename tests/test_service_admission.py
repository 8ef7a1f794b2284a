"""Admission: past ADMISSION_LIMIT inference requests in progress the next ones wait unread, and past the
backlog a 429 comes back before the body is read, while health and listings still answer."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from service_harness import copy_artifact, serve, wait_until

GOOD = {"latents": [[0.0] * 10]}


@pytest.fixture(scope="module")
def url(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("service-admission") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    with serve(root, admission_limit=1, admission_backlog=1, body_timeout_s=60) as base:
        yield base


def stalled_upload(url: str, length: int = 100_000) -> socket.socket:
    """A /decode whose client sends its headers and part of its body, then nothing. A body larger than what
    admission reads before it takes a place (64 KiB) holds its place; a smaller one holds none."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = f"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}"
    sock.sendall(head.encode() + b'\r\n\r\n{"latents": [[0.0, ')
    return sock


def gate(http: httpx.Client) -> tuple[float, float]:
    """(in progress, waiting) at the admission gate, as /metrics reports them."""
    text = http.get("/metrics").text
    values = {}
    for name in ("disentangle_admission_in_progress", "disentangle_admission_waiting"):
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        assert match, f"{name} is missing from /metrics"
        values[name] = float(match.group(1))
    return values["disentangle_admission_in_progress"], values["disentangle_admission_waiting"]


def test_past_the_limit_requests_wait_and_past_the_backlog_get_a_429_before_their_body(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/decode", json=GOOD).status_code == 200
        wait_until(lambda: gate(http) == (0, 0), "an empty gate", timeout_s=30)
        with ExitStack() as stack:
            # Small bodies are read before a place is taken: clients stalling (or trickling) them hold none.
            small = [stack.enter_context(stalled_upload(url, length=1000)) for _ in range(3)]
            assert http.post("/decode", json=GOOD).status_code == 200 and gate(http) == (0, 0)
            for sock in small:
                sock.close()
            stack.enter_context(stalled_upload(url))  # in progress: the one place
            wait_until(lambda: gate(http) == (1, 0), "the first stalled upload to take the place", timeout_s=30)
            waiting = stack.enter_context(stalled_upload(url))  # the one waiting; its body is never read
            # The server reads each connection when it gets to it: only once the second upload is seen waiting
            # is the next request past the backlog (else it would take the waiting place itself).
            wait_until(lambda: gate(http) == (1, 1), "the second stalled upload to wait", timeout_s=30)
            assert http.get("/healthz").status_code == 200
            assert http.get("/models").status_code == 200
            refused = http.post("/decode", json=GOOD)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            assert "at most 1 requests in progress and 1 waiting" in refused.json()["detail"]
            # Refused on its headers alone: a body announced but never sent makes no difference.
            with socket.create_connection(waiting.getpeername()[:2], timeout=30) as bare:
                bare.sendall(b"POST /encode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000000\r\n\r\n")
                assert bare.recv(65536).startswith(b"HTTP/1.1 429")
        # The stalled clients are gone: once the server has seen them go, their places are free again.
        deadline = time.monotonic() + 30
        while (answer := http.post("/decode", json=GOOD)).status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answer.status_code == 200
        assert http.post("/encode", json={"images": [[[0.0] * 64] * 64]}).status_code == 200
