"""Liveness on a port of its own, answered by a thread: no request backlog can hold it up.

At a few thousand connections a new connection to the service's port waits in the kernel's accept queue, and
a request on it waits its turn on the event loop: a liveness probe sent there measured 19-30 s in 10 of 15
runs at 2,048 connections (issue 33), long enough for an orchestrator to kill a pod that was only busy. With
``HEALTH_PORT`` set, ``/healthz`` is also answered on that port by a thread with an accept queue of its own,
which asks the event loop nothing: it says 200 while the loop has turned within ``stale_after_s`` (a callback
the loop runs every second marks the time), else 503. So a busy loop is alive, and only a loop that stopped
turning (a deadlock, a request that never yields) fails the probe.

Every worker process binds the port (SO_REUSEPORT), so the kernel hands a probe to one of them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

from service.errors import NotFound
from service.refusals import raw_refusal

BEAT_S = 1.0
READ_TIMEOUT_S = 1.0  # a probe sends its request at once; a client that does not is dropped
MAX_REQUEST_BYTES = 4096


def _answer(status: int, body: dict[str, object]) -> bytes:
    payload = json.dumps(body).encode()
    head = f"HTTP/1.1 {status} {'OK' if status == 200 else 'Service Unavailable'}\r\n"
    head += f"content-type: application/json\r\ncontent-length: {len(payload)}\r\nconnection: close\r\n\r\n"
    return head.encode() + payload


class Liveness:
    def __init__(self, host: str, port: int, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.beat = time.monotonic()
        self._listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._listener.bind((host, port))
        self._listener.listen(64)
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name="liveness", daemon=True)
        self._timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._mark(loop)
        self._thread.start()

    def _mark(self, loop: asyncio.AbstractEventLoop) -> None:
        self.beat = time.monotonic()
        self._timer = loop.call_later(BEAT_S, self._mark, loop)

    def answer(self, request: bytes) -> bytes:
        if not request.startswith(b"GET /healthz "):
            error = NotFound("path", "GET /healthz (this port serves liveness only)", repr(request[:40]))
            return raw_refusal(error)
        age = time.monotonic() - self.beat
        if age > self.stale_after_s:
            return _answer(503, {"status": "stalled", "event_loop_idle_s": round(age, 1)})
        return _answer(200, {"status": "ok"})

    def _serve(self) -> None:
        while not self._stopped:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed by stop()
            with connection:
                connection.settimeout(READ_TIMEOUT_S)
                try:
                    request = b""
                    while b"\r\n\r\n" not in request and len(request) < MAX_REQUEST_BYTES:
                        chunk = connection.recv(MAX_REQUEST_BYTES)
                        if not chunk:
                            break
                        request += chunk
                    connection.sendall(self.answer(request))
                except OSError:
                    continue

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept
        except OSError:
            pass
        self._listener.close()
