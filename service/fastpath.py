"""The busy routes (/decode, /encode, /synthesize) served as raw ASGI, off FastAPI's per-request stack.

For a one-latent decode, FastAPI's routing, dependency resolution, Request and Response objects and
exception middleware cost the event loop more than the model and the PNG writer cost the inference thread.
This middleware sits innermost of the app's own, so request ids, body limits, metrics, CORS and the access
log still wrap it, and answers POSTs to those three paths itself with the very same route code (the
``*_call`` functions in service/routes), the same API key check and the app's own exception handlers. So the
answers, errors included, are those of the FastAPI routes, which stay registered: they document the API in
the OpenAPI schema and serve it when ``fast_paths`` is off. Everything else goes on to FastAPI.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.dependencies import bearer_token, check_api_key
from service.payloads import Call, Reply, read_body
from service.registry import Registry
from service.routes import decode, encode, synthesize
from service.settings import Settings

Handler = Callable[[Call, Registry, Settings], Awaitable[Reply]]
ROUTES: dict[str, tuple[Handler, list[BaseRoute]]] = {
    "/decode": (decode.decode_call, decode.router.routes),
    "/encode": (encode.encode_call, encode.router.routes),
    "/synthesize": (synthesize.synthesize_call, synthesize.router.routes),
}


def _documented(path: str, routes: list[BaseRoute]) -> APIRoute:
    """The FastAPI route that documents ``path``: it names the endpoint in metrics and logs, as it would."""
    for route in routes:
        if isinstance(route, APIRoute) and route.path == path and "POST" in (route.methods or ()):
            return route
    raise LookupError(f"no FastAPI route documents the fast path POST {path}")


def header_map(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name, the first of repeated ones (as Starlette's ``Headers.get``).

    One pass that the route's few lookups then share: a ``Headers`` object decodes and compares every header
    again on each ``get``.
    """
    headers: dict[str, str] = {}
    for key, value in scope["headers"]:
        headers.setdefault(key.decode("latin-1"), value.decode("latin-1"))
    return headers


EMPTY_QUERY: Mapping[str, str] = MappingProxyType({})


class FastRoutes:
    def __init__(self, app: ASGIApp, owner: FastAPI, settings: Settings) -> None:
        self.app = app
        self.owner = owner
        self.settings = settings
        self.routes = {path: (handler, _documented(path, routes)) for path, (handler, routes) in ROUTES.items()}
        self.keyed = settings.api_key is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.routes:
            await self.app(scope, receive, send)
            return
        handler, scope["route"] = self.routes[scope["path"]]
        headers = header_map(scope)
        try:
            if self.keyed:
                check_api_key(self.settings, bearer_token(headers.get("authorization")))
            raw_query = scope["query_string"]
            query = QueryParams(raw_query) if raw_query else EMPTY_QUERY
            call = Call(headers, query, partial(read_body, receive), scope.setdefault("state", {}), self.owner.state)
            reply = await handler(call, self.owner.state.registry, self.settings)
        except Exception as error:
            respond = self._error_handler(error)
            if respond is None:
                raise  # to the server-error middleware, as from a FastAPI route
            response = respond(Request(scope, receive), error)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": reply.raw_headers()})
        await send({"type": "http.response.body", "body": reply.body})

    def _error_handler(self, error: Exception) -> Any:
        """The handler Starlette's exception middleware would pick: the first registered class in the MRO
        (``Exception`` itself belongs to the server-error middleware outside)."""
        handlers = self.owner.exception_handlers
        for cls in type(error).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]
        return None
