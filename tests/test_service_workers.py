"""Worker processes (``--workers N``): forked from the supervisor, replaced when one dies, stopped together."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from service_harness import REPO, copy_artifact, free_port, wait_until, wait_until_answering
from uvicorn.config import STARTUP_FAILURE

from service.workers import supervise

WAIT_S = 60


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(smoke_artifact: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    copy_artifact(smoke_artifact, models, "smoke")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")}
    command = [sys.executable, "-m", "service.cli", "--model-dir", str(models), "--port", str(port), "--workers", "2"]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_answering(url, "/readyz", lambda: None if server.poll() is None else log.read_text(), WAIT_S)
        wait_until(lambda: len(children(server.pid)) == 2, "two workers", WAIT_S)
        first, second = children(server.pid)
        os.kill(first, signal.SIGKILL)

        def replaced() -> bool:
            return len(children(server.pid)) == 2 and first not in children(server.pid)

        wait_until(replaced, "a replacement", WAIT_S)
        replacement = next(pid for pid in children(server.pid) if pid != second)
        wait_until_answering(url, "/readyz", lambda: None, WAIT_S)
        for _ in range(8):  # either worker may take each one
            answer = httpx.post(f"{url}/decode", json={"latents": [[0.0] * 10]}, timeout=WAIT_S)
            assert answer.status_code == 200, answer.text
        assert f"worker {first} died of signal 9; started worker {replacement} in its place" in log.read_text()

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=WAIT_S) == 0
        assert not alive(second) and not alive(replacement)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_worker_that_cannot_start_stops_the_supervisor_rather_than_restarting(tmp_path: Path) -> None:
    # uvicorn's startup-failure status means the next start would fail the same way: no restart loop.
    starts = tmp_path / "starts"

    def serve() -> None:  # runs in each forked worker
        with starts.open("a") as out:
            out.write(f"{os.getpid()}\n")
        sys.exit(STARTUP_FAILURE)

    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    assert supervise(2, serve, stop_after_s=1.0, flush=lambda: None) == STARTUP_FAILURE
    assert len(starts.read_text().split()) == 2  # each of the two started once
    assert {number: signal.getsignal(number) for number in handlers} == handlers  # the caller's, back


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_that_exits_is_restarted_until_the_supervisor_is_stopped(
    tmp_path: Path, stop: int, caplog: pytest.LogCaptureFixture
) -> None:
    starts = tmp_path / "starts"

    def serve() -> None:
        with starts.open("a") as out:
            out.write(f"{os.getpid()}\n")
        if len(starts.read_text().split()) < 4:
            sys.exit(1)  # a crash after start: the supervisor replaces it
        time.sleep(WAIT_S)  # then it serves, as far as the supervisor knows, until it is stopped

    def stop_later() -> None:
        wait_until(lambda: starts.exists() and len(starts.read_text().split()) >= 5, "the restarts", WAIT_S)
        os.kill(os.getpid(), stop)

    threading.Thread(target=stop_later, daemon=True).start()
    with caplog.at_level(logging.INFO, logger="disentangle.workers"):
        assert supervise(2, serve, stop_after_s=1.0, flush=lambda: None) == 0
    restarts = [r.getMessage() for r in caplog.records if "in its place" in r.getMessage()]
    assert len(restarts) == 3 and all("exited with status 1" in m for m in restarts), restarts
    # the serving workers ended on the SIGTERM passed on to them, none had to be killed
    assert not any("did not stop" in r.getMessage() for r in caplog.records)
    assert not any(alive(int(pid)) for pid in starts.read_text().split())
