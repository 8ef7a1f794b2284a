"""Clients that leave before their answer: counted as such (status 499, nginx's "client closed request"),
never as a 500.

A client that hangs up in the middle of its body makes the body read raise ``ClientDisconnect``. Nothing failed
on our side and nobody is there to read an answer, so it is neither logged as an error nor counted among the
5xx that an alert watches: the request is recorded with status 499, and ``disentangle_client_disconnects``
counts it by endpoint.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect

CLIENT_CLOSED = 499


async def _client_left(request: Request, exc: Exception) -> Response:
    # The answer goes nowhere (the server drops writes to a closed connection); its status is what gets recorded.
    return Response(status_code=CLIENT_CLOSED)


def install_disconnect_handler(app: FastAPI) -> None:
    """Registered beside the error handlers, so FastAPI's routes and the fast paths (which look handlers up
    by exception class) both answer a disconnect with it rather than reaching the 500 middleware."""
    app.add_exception_handler(ClientDisconnect, _client_left)
