"""HTTP bodies in and out: the request as route code sees it, content-type dispatch, JSON parsing into
schemas, OpenAPI docs, responses.

Routes read their bodies through here instead of FastAPI's body parameters because one endpoint accepts
several content types (JSON, multipart, raw float32), and because ``model_validate_json`` on the raw bytes
skips the intermediate dicts that a parsed-then-validated body would build. The busy routes' code takes a
``Call`` rather than a Starlette ``Request``, so that the same code serves both the FastAPI route and the
raw ASGI fast path (service/fastpath.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from service.errors import TooLarge, UnsupportedType, invalid

Schema = TypeVar("Schema", bound=BaseModel)

JSON = "application/json"
MULTIPART = "multipart/form-data"
BINARY = "application/octet-stream"
PNG = "image/png"
GIF = "image/gif"
# A JSON body whose parse grows with its size is parsed in a pool thread above this, so the event loop never
# waits on it; below it, two thread hand-offs would cost more than the parse.
INLINE_BODY_BYTES = 16 << 10
# Values in one JSON body handed to pydantic, counted by its commas before it is parsed: each becomes a Python
# object, and a body of tiny lists ("[0],[0],...") would otherwise take some fifty times its size in memory.
# Far above what a valid request holds (256 latents of 1,024 values); nested image arrays never count, as
# service/arraytext.py reads those.
MAX_JSON_VALUES = 1 << 18


@dataclass
class Call:
    """One request as route code reads it: lower-case header names, the query, the body (read on first use,
    so a route can check headers or take an upload slot first); the scope's state, where the route notes the
    model it chose (the metrics and the access log read it); and the app's state."""

    headers: Mapping[str, str]
    query: Mapping[str, str]
    read: Callable[[], Awaitable[bytes]]
    state: dict[str, Any]
    app_state: Any

    @classmethod
    def of(cls, request: Request) -> Call:
        state = request.scope.setdefault("state", {})
        return cls(request.headers, request.query_params, request.body, state, request.app.state)

    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def accepts(self, media: str) -> bool:
        """Whether the caller asked for ``media`` by name (a wildcard alone keeps the JSON default)."""
        return media in self.headers.get("accept", "")

    async def json_body(self, also: tuple[str, ...] = ()) -> bytes:
        """The raw body of a request that must be JSON (or one of ``also``, read elsewhere); else a 415.
        ``json_body`` below says why only application/json."""
        kind = self.content_type()
        if kind != JSON:
            expected = " or ".join((JSON, *also))
            raise UnsupportedType("Content-Type", expected, repr(kind) if kind else "none")
        return await self.read()

    async def parse_json(self, schema: type[Schema], also: tuple[str, ...] = ()) -> Schema:
        return await validated_off_loop(schema, await self.json_body(also))


async def read_body(receive: Receive) -> bytes:
    """A request's whole body from its ASGI ``receive``; a client that hangs up raises ``ClientDisconnect``."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def accepts(request: Request, media: str) -> bool:
    """Whether the caller asked for ``media`` by name (a wildcard alone keeps the JSON default)."""
    return media in request.headers.get("accept", "")


async def json_body(request: Request, also: tuple[str, ...] = ()) -> bytes:
    """The raw body of a request that must be JSON (or one of ``also``, read elsewhere); else a 415.

    Only a body labelled application/json is read as JSON. A browser sends text/plain, a form, or an unlabelled
    body cross-site without asking first; application/json makes it ask (a CORS preflight), which the service
    answers only for the configured origins.
    """
    kind = content_type(request)
    if kind != JSON:
        expected = " or ".join((JSON, *also))
        raise UnsupportedType("Content-Type", expected, repr(kind) if kind else "none")
    return await request.body()


def validated(schema: type[Schema], body: bytes) -> Schema:
    """``body`` as ``schema``, or a 422: the one place where a pydantic error blames the request."""
    values = body.count(b",") + 1
    if values > MAX_JSON_VALUES:
        raise TooLarge("body", f"JSON of at most {MAX_JSON_VALUES} values", f"{values} (counted by commas)")
    try:
        return schema.model_validate_json(body)
    except ValidationError as error:
        raise invalid(error) from None


async def validated_off_loop(schema: type[Schema], body: bytes) -> Schema:
    """``validated``, in a pool thread for a body large enough that its parse would hold up the event loop."""
    if len(body) <= INLINE_BODY_BYTES:
        return validated(schema, body)
    return await asyncio.get_running_loop().run_in_executor(None, validated, schema, body)


async def parse_json(request: Request, schema: type[Schema], also: tuple[str, ...] = ()) -> Schema:
    return await validated_off_loop(schema, await json_body(request, also))


def json_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def documented_body(schema: type[BaseModel], other: dict[str, Any] | None = None) -> dict[str, Any]:
    """``openapi_extra`` describing a body that a route reads itself: the JSON schema plus other media."""
    content: dict[str, Any] = {JSON: {"schema": schema.model_json_schema()}, **(other or {})}
    return {"requestBody": {"required": True, "content": content}}


@dataclass(frozen=True)
class Reply:
    """A finished response body, built in an inference thread so the event loop only sends it."""

    body: bytes
    media_type: str = JSON
    headers: dict[str, str] | None = None

    def response(self) -> Response:
        return Response(self.body, media_type=self.media_type, headers=self.headers)

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers ``response()`` would send, in the same order, without building a Response."""
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (self.headers or {}).items()]
        raw.append((b"content-length", str(len(self.body)).encode("latin-1")))
        raw.append((b"content-type", self.media_type.encode("latin-1")))
        return raw
