"""Clients that hang up in the middle of their body are counted as disconnects (status 499), never as 500s,
and leave no traceback in the log. Real sockets against a real `disentangle-serve`."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
from service_harness import copy_artifact, metric, serve, server_log, wait_until

CLIENTS = 20  # per route
PATHS = ("/decode", "/traverse", "/encode")  # a fast path, a FastAPI route, a fast path that reads in a pool


def hang_up_mid_body(url: str, path: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "Content-Length: 100000\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b'{"latents": [[0.0, ')


def test_clients_that_leave_mid_body_are_counted_as_disconnects_not_500s(smoke_artifact: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    with serve(root) as url:
        for path in PATHS:
            for _ in range(CLIENTS):
                hang_up_mid_body(url, path)

        def counted() -> bool:
            text = httpx.get(f"{url}/metrics").text
            return all(metric(text, "disentangle_client_disconnects_total", endpoint=p) == CLIENTS for p in PATHS)

        wait_until(counted, f"{CLIENTS} disconnects counted on each of {PATHS}", timeout_s=30)
        text = httpx.get(f"{url}/metrics").text
        for path in PATHS:
            assert metric(text, "disentangle_requests_total", endpoint=path, status="499") == CLIENTS
        statuses = [line for line in text.splitlines() if line.startswith("disentangle_requests_total")]
        assert not [line for line in statuses if 'status="5' in line], statuses
        # The service goes on serving.
        assert httpx.post(f"{url}/decode", json={"latents": [[0.0] * 10]}).status_code == 200
        log = server_log(root, url).read_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
