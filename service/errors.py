"""Rejections and the JSON shape every error takes.

A rejected request gets ``{"detail": message, "field": ..., "expected": ..., "received": ...}``; the message
alone is enough for a person, the parts are there for programs. Pydantic's validation errors are rewritten
into the same shape so that a caller never has to parse two formats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

SHOWN_CHARS = 60


def shown(value: object) -> str:
    """A short repr of what a caller sent, so that a huge array never floods a message."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


class Rejected(Exception):
    """A request the service refuses, with a message that names the field, the expected and the received."""

    def __init__(
        self,
        status: int,
        field: str | None,
        expected: str,
        received: str,
        *,
        hint: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        where = f"{field}: " if field else ""
        message = f"{where}expected {expected}, received {received}" + (f"; {hint}" if hint else "")
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.expected = expected
        self.received = received
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {
            "detail": self.message,
            "field": self.field,
            "expected": self.expected,
            "received": self.received,
        }


def field_path(loc: Sequence[int | str]) -> str:
    """("latents", 0, 2) -> "latents[0][2]"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_body(errors: Sequence[Any], prefix_parts: int = 0) -> dict[str, Any]:
    """Pydantic's error list as one readable message plus the first error's parts."""
    parts = []
    for error in errors:
        field = field_path(error["loc"][prefix_parts:])
        parts.append(f"{field}: {error['msg']}, received {shown(error.get('input'))}")
    first = errors[0]
    return {
        "detail": "; ".join(parts),
        "field": field_path(first["loc"][prefix_parts:]),
        "expected": first["msg"],
        "received": shown(first.get("input")),
    }


async def _rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Rejected)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _invalid_body(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return JSONResponse(validation_body(exc.errors(include_url=False)), status_code=422)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI's locations start with where the value came from ("query", "path"); say so only once.
    return JSONResponse(validation_body(exc.errors(), prefix_parts=1), status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Rejected, _rejected)
    app.add_exception_handler(ValidationError, _invalid_body)
    app.add_exception_handler(RequestValidationError, _invalid_request)
