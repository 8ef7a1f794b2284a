"""Rejections and the one JSON shape every error takes, 4xx and 5xx alike.

Code that refuses a request raises the kind of refusal it is (``Invalid``, ``TooLarge``, ``Busy``, ...): the
batcher, validation and the routes never name an HTTP status. ``STATUS`` alone maps each kind to the status
that answers it.

A rejected request gets ``{"detail": message, "field": ..., "expected": ..., "received": ...}``; the message
alone is enough for a person, the parts are there for programs. Pydantic's validation errors of a request
body, Starlette's 404 and 405, and malformed multipart bodies are rewritten into the same shape, so that a
caller never has to parse two formats. A 500 says only that it happened and under which request id; the
traceback goes to the server's log under that id, never to the caller.

The bodies are built by plain functions (``error_bytes``, ``internal_error_body``, ``send_error``) so that a
raw ASGI path answers exactly what the FastAPI handlers answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.types import Send

from service.logs import request_id

SHOWN_CHARS = 60


def shown(value: object) -> str:
    """A short repr of what a caller sent, so that a huge array never floods a message."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer (documented in the OpenAPI for each status a route can give)."""

    detail: str = Field(description="the whole message: field, expected and received in one sentence")
    field: str | None = Field(description="the part of the request at fault, e.g. 'latents[0][3]'; null if none")
    expected: str | None = Field(description="what the service accepts there; null on a 500")
    received: str | None = Field(description="what it got instead, shortened; null on a 500")
    request_id: str | None = Field(default=None, description="on a 500: the id the server's log files it under")


class Rejected(Exception):
    """A request the service refuses, with a message that names the field, the expected and the received.

    Raise one of its kinds below; its HTTP status is ``STATUS``'s.
    """

    def __init__(
        self,
        field: str | None,
        expected: str,
        received: str,
        *,
        hint: str = "",
        headers: Mapping[str, str] | None = None,
        detail: str | None = None,
    ) -> None:
        where = f"{field}: " if field else ""
        message = detail or f"{where}expected {expected}, received {received}" + (f"; {hint}" if hint else "")
        super().__init__(message)
        self.message = message
        self.field = field
        self.expected = expected
        self.received = received
        self.headers = headers

    def body(self) -> dict[str, Any]:
        body = {
            "detail": self.message,
            "field": self.field,
            "expected": self.expected,
            "received": self.received,
        }
        if self.status >= 500:  # the id under which the service's log tells the rest
            body["request_id"] = request_id.get()
        return body

    @property
    def status(self) -> int:
        """The HTTP status that answers this kind of refusal."""
        return STATUS[type(self)]


class Malformed(Rejected):
    """A request that does not parse: a multipart body, a Host header, HTTP itself."""


class Unauthorized(Rejected):
    """No API key, or a wrong one."""


class Forbidden(Rejected):
    """Not allowed from where the request came."""


class NotFound(Rejected):
    """No such model, card picture or path."""


class MethodNotAllowed(Rejected):
    """A method the path does not take."""


class NotAcceptable(Rejected):
    """An Accept the answer cannot take."""


class TooSlow(Rejected):
    """Request headers or body not sent in time."""


class Conflict(Rejected):
    """Some artifact folders failed to load."""


class TooLarge(Rejected):
    """Over a limit: body, item count, image side, pixel count."""


class HeadersTooLarge(Rejected):
    """More request header lines or bytes than allowed."""


class UnsupportedType(Rejected):
    """A Content-Type the route does not read."""


class Invalid(Rejected):
    """A value the route cannot use."""


class Busy(Rejected):
    """A queue or the admission backlog is full; worth retrying."""


class Failed(Rejected):
    """A failure of the service itself (its log has the details)."""


class Unavailable(Rejected):
    """Not ready, or shutting down."""


class Refused(Rejected):
    """A refusal Starlette made itself, with the status it chose (the only kind that brings its own)."""

    def __init__(self, status: int, field: str | None, expected: str, received: str, **options: Any) -> None:
        super().__init__(field, expected, received, **options)
        self._status = status

    @property
    def status(self) -> int:
        return self._status


# The one place that says which HTTP status answers which kind of refusal.
STATUS: dict[type[Rejected], int] = {
    Malformed: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    NotAcceptable: 406,
    TooSlow: 408,
    Conflict: 409,
    TooLarge: 413,
    UnsupportedType: 415,
    HeadersTooLarge: 431,
    Invalid: 422,
    Busy: 429,
    Failed: 500,
    Unavailable: 503,
}


# Pydantic names the member of a union that a value failed as one more step of its location, e.g.
# ("factors", "posX", "float"); those steps are dropped so that the location is the caller's field.
UNION_MEMBERS = frozenset({"float", "int", "str", "bool", "list[any]", "list[float]", "none"})


def field_path(loc: Sequence[int | str]) -> str:
    """("latents", 0, 2) -> "latents[0][2]"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def described(value: object) -> str:
    """A value as JSON writes it, with its JSON type where Python's repr would hide it (true is not 1)."""
    if isinstance(value, bool):
        return f"{json.dumps(value)} (a boolean)"
    if value is None:
        return "null"
    return shown(value)


def _phrase(messages: list[str]) -> str:
    """Pydantic's messages for one field as one phrase: "expected a valid number or a valid string"."""
    unique = list(dict.fromkeys(messages))
    wanted = [m.removeprefix("Input should be ") for m in unique if m.startswith("Input should be ")]
    others = [m for m in unique if not m.startswith("Input should be ")]
    return "; ".join(([f"expected {' or '.join(wanted)}"] if wanted else []) + others)


def validation_body(errors: Sequence[Any], prefix_parts: int = 0) -> dict[str, Any]:
    """Pydantic's error list as one readable message plus the first error's parts.

    The errors of one value that failed every member of a union are merged into one phrase.
    """
    merged: dict[str, tuple[list[str], object]] = {}
    for error in errors:
        loc = list(error["loc"][prefix_parts:])
        while loc and loc[-1] in UNION_MEMBERS:
            loc.pop()
        messages, _ = merged.setdefault(field_path(loc), ([], error.get("input")))
        messages.append(error["msg"])
    parts = [f"{field}: {_phrase(messages)}, received {described(got)}" for field, (messages, got) in merged.items()]
    field, (messages, got) = next(iter(merged.items()))
    return {
        "detail": "; ".join(parts),
        "field": field,
        "expected": _phrase(messages).removeprefix("expected "),
        "received": described(got),
    }


def invalid(error: ValidationError) -> Invalid:
    """A 422 for a request body that failed its schema.

    Only the code that validates a request calls this: a ValidationError raised anywhere else is a bug of
    ours, and reaches the caller as a 500, not as a 422 blaming the request.
    """
    body = validation_body(error.errors(include_url=False))
    return Invalid(body["field"], body["expected"], body["received"], detail=body["detail"])


def internal_error_body(request_id: str | None) -> dict[str, Any]:
    return {
        "detail": f"internal error; the service's log has the details under request id {request_id}",
        "field": None,
        "expected": None,
        "received": None,
        "request_id": request_id,
    }


def error_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


async def send_error(
    send: Send, status: int, body: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer an error straight over ASGI, for code that runs outside FastAPI's handlers."""
    payload = error_bytes(body)
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": payload})


def http_rejection(exc: HTTPException, method: str, path: str) -> Rejected:
    """Starlette's own errors (unknown path, wrong method, unreadable multipart) in the shape of ours."""
    if exc.status_code == 404:
        return NotFound("path", "a path this service serves (listed at /openapi.json)", shown(path))
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return MethodNotAllowed("method", f"one of {allowed}", method, headers=exc.headers)
    return Refused(exc.status_code, None, "a well-formed request", str(exc.detail), headers=exc.headers)


async def _rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Rejected)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return await _rejected(request, http_rejection(exc, request.method, request.url.path))


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI's locations start with where the value came from ("query", "path"); say so only once.
    return JSONResponse(validation_body(exc.errors(), prefix_parts=1), status_code=STATUS[Invalid])


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Rejected, _rejected)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)


# What each error status means, as the OpenAPI documents it; every one answers an ErrorBody.
ERROR_MEANINGS = {
    400: "a Host header not among the trusted hosts, or a malformed multipart body",
    401: "no or a wrong API key (only when DISENTANGLE_API_KEY is set)",
    403: "not allowed from where the request came",
    404: "no such model, card picture or path",
    405: "a method the path does not take",
    406: "Accept: image/png for more than one image",
    408: "request headers or body not sent in time",
    409: "some artifact folders failed to load; their previous models still serve",
    413: "body, item count, image side or pixel count over a limit",
    415: "a Content-Type this route does not read",
    422: "a value the route cannot use, naming the field, the expected and the received",
    431: "more request header lines or header bytes than allowed",
    429: "the queue or the admission backlog is full; retry after Retry-After seconds",
    500: "a failure of the service itself: only the request id, under which its log has the details",
    503: "not ready: no model, a network that keeps failing, or shutting down",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route (or router) that can answer these error statuses."""
    return {status: {"model": ErrorBody, "description": ERROR_MEANINGS[status]} for status in statuses}


# What a route that reads a body and runs a model may answer besides 200, 400, 401 and 500.
INFERENCE_ERRORS = (404, 408, 413, 415, 422, 429, 503)
