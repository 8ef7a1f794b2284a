"""ASGI middleware around every request: request id, body size limit, metrics and the access log.

Written against raw ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a memory
stream per request; at thousands of requests a second that overhead is visible.
"""

from __future__ import annotations

import json
import logging
import random
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import Rejected
from service.logs import request_id
from service.metrics import Metrics

log = logging.getLogger("disentangle.access")
REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID = 64


def _incoming_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == REQUEST_ID_HEADER and 0 < len(value) <= MAX_REQUEST_ID and value.isascii():
            return value.decode()
    # Not os.urandom: a request id needs uniqueness, not secrecy, and the syscall showed up in profiles.
    return f"{random.getrandbits(64):016x}"


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = _incoming_id(scope)
        token = request_id.set(rid)
        status = 500
        rid_header = (REQUEST_ID_HEADER, rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body:
                await self._reject_early(declared, send_with_id)
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - start)
            request_id.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        """Counts a streamed body (no or a false Content-Length) and stops it at the limit."""
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise Rejected(413, "body", f"at most {self.max_body} bytes", f"more than {self.max_body}")
            return message

        return limited

    async def _reject_early(self, declared: int, send: Send) -> None:
        error = Rejected(413, "body", f"at most {self.max_body} bytes", f"Content-Length {declared}")
        payload = json.dumps(error.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        # The unread body stays on the connection, so it must close rather than be reused.
        headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        model = scope.get("state", {}).get("model", "")
        self.metrics.requests.labels(endpoint, model, str(status)).inc()
        self.metrics.latency.labels(endpoint, model).observe(seconds)
        if self.access_log and log.isEnabledFor(logging.INFO):
            # makeRecord + handle rather than log.info: the caller lookup (a walk up the stack) is skipped,
            # and the handler only queues the record for the logging thread.
            extra = {"status": status, "endpoint": endpoint, "model": model, "ms": round(seconds * 1000, 3)}
            args = (scope["method"], scope["path"], status)
            log.handle(log.makeRecord(log.name, logging.INFO, "", 0, "%s %s %d", args, None, extra=extra))


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
