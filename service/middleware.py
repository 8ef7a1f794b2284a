"""ASGI middleware around every request: request id, body size limit, the 500 answer, metrics and the access log.

Written against raw ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a memory
stream per request; at thousands of requests a second that overhead is visible.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.admission import GATED_PATHS, content_length
from service.disconnects import CLIENT_CLOSED
from service.errors import Rejected, TooLarge, Unavailable, internal_error_body, send_error
from service.logs import AccessEntry, log_access, request_id
from service.metrics import Metrics
from service.security import TrustedHosts, security_headers

errors = logging.getLogger("disentangle.error")
SHUTTING_DOWN = Unavailable(
    None, "a request that completes within the shutdown deadline", "the service is shutting down", hint="retry"
)
SHUTDOWN_HEADERS = [(b"retry-after", b"1"), (b"connection", b"close")]
REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID = 64


def _incoming_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == REQUEST_ID_HEADER and 0 < len(value) <= MAX_REQUEST_ID and value.isascii():
            return value.decode()
    # Not os.urandom: a request id needs uniqueness, not secrecy, and the syscall showed up in profiles.
    return f"{random.getrandbits(64):016x}"


class RequestContext:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_body_bytes: int,
        hosts: TrustedHosts,
        access_log: bool = True,
        budgets: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.budgets = budgets or {}  # body bytes by path (service/budgets.py); other paths: max_body_bytes
        self.hosts = hosts
        self.access_log = access_log
        # Labelled children by (endpoint, model, status): ``labels()`` validates and locks on every call.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = _incoming_id(scope)
        token = request_id.set(rid)
        status = 500
        started = False
        added = [(REQUEST_ID_HEADER, rid.encode()), *security_headers(scope["path"])]

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        try:
            host = _header(scope, b"host")
            declared = content_length(scope)
            budget = self.budgets.get(scope["path"], self.max_body)
            if not self.hosts.allows(host):
                error = self.hosts.rejection(host)
                await send_error(send_with_id, error.status, error.body(), [(b"connection", b"close")])
            elif declared is not None and declared > budget:
                await self._reject_early(declared, budget, send_with_id)
            else:
                await self.app(scope, self._limited(receive, budget), send_with_id)
        except ClientDisconnect:  # raised outside the app's handlers (e.g. while waiting for admission)
            status = CLIENT_CLOSED
        except Rejected as error:  # a refusal outside the app's handlers (e.g. a body read before admission)
            if started:
                raise
            headers = [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
            await send_error(send_with_id, error.status, error.body(), headers)
        except asyncio.CancelledError:
            # Only a shutdown cancels a request (service/cli.py): past SHUTDOWN_TIMEOUT_S, those still in flight
            # are cut. The caller learns that, and that a retry elsewhere may succeed; it is no error of ours.
            if not started:
                await send_error(send_with_id, 503, SHUTTING_DOWN.body(), SHUTDOWN_HEADERS)
            errors.warning("cut by the shutdown: %s %s", scope["method"], scope["path"])
        except Exception:
            # A bug of ours: the traceback goes to the log under the request id, the caller gets the id only.
            errors.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if started:
                raise  # part of a response is out; all that is left is to drop the connection
            await send_error(send_with_id, 500, internal_error_body(rid))
        finally:
            self._record(scope, rid, status, time.perf_counter() - start)
            request_id.reset(token)

    def _limited(self, receive: Receive, budget: int) -> Receive:
        """Counts a streamed body (no or a false Content-Length) and stops it at the budget."""
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > budget:
                    raise TooLarge("body", f"at most {budget} bytes", f"more than {budget}")
            return message

        return limited

    async def _reject_early(self, declared: int, budget: int, send: Send) -> None:
        error = TooLarge("body", f"at most {budget} bytes", f"Content-Length {declared}")
        # The unread body stays on the connection, so it must close rather than be reused.
        await send_error(send, error.status, error.body(), [(b"connection", b"close")])

    def _record(self, scope: Scope, rid: str, status: int, seconds: float) -> None:
        route = scope.get("route")
        # A request refused at the admission gate (its body read there) has no route yet; its path is one.
        path: str = scope["path"]
        endpoint: str = getattr(route, "path", path if path in GATED_PATHS else "unmatched")
        model = scope.get("state", {}).get("model", "")
        key = (endpoint, model, status)
        children = self._children.get(key)
        if children is None:
            requests = self.metrics.requests.labels(endpoint, model, str(status))
            children = self._children[key] = (requests, self.metrics.latency.labels(endpoint, model))
        children[0].inc()
        children[1].observe(seconds)
        if status == CLIENT_CLOSED:
            self.metrics.disconnects.labels(endpoint).inc()
        if self.access_log:
            log_access(AccessEntry(time.time(), rid, scope["method"], scope["path"], status, endpoint, model, seconds))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
