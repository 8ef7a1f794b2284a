"""Liveness on a port of its own: answered by a thread whatever the event loop is doing, 200 while the loop
turns, 503 once it has stopped turning. Real sockets; a real event loop, run or held still."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from service_harness import copy_artifact, free_port, serve

from service.liveness import Liveness


def test_the_liveness_port_answers_from_its_thread_and_sees_a_loop_that_stopped_turning() -> None:
    port = free_port()
    loop = asyncio.new_event_loop()
    liveness = Liveness("127.0.0.1", port, stale_after_s=0.5)
    try:
        liveness.start(loop)
        url = f"http://127.0.0.1:{port}/healthz"
        assert httpx.get(url, timeout=5).json() == {"status": "ok"}  # the loop is not even running: a thread answers
        time.sleep(0.8)  # the loop has not turned for longer than stale_after_s
        stalled = httpx.get(url, timeout=5)
        assert stalled.status_code == 503 and stalled.json()["status"] == "stalled"
        loop.run_until_complete(asyncio.sleep(1.2))  # it turns again: its beat marks the time
        assert httpx.get(url, timeout=5).status_code == 200
        other = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert other.status_code == 404 and other.json()["field"] == "path"
    finally:
        liveness.stop()
        loop.close()


def test_a_served_app_answers_liveness_on_its_health_port(smoke_artifact: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    health = free_port()
    with serve(root, health_port=health) as url:
        assert httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=5).json() == {"status": "ok"}
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}  # the service's own port as before
