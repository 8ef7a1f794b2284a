"""What route handlers ask FastAPI for: settings, the model registry, and the API key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.errors import Unauthorized
from service.registry import Registry
from service.settings import Settings

# Every dependency is `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread, a
# round trip that costs more than the rest of a small request.
bearer = HTTPBearer(auto_error=False, description="the service's API key, when DISENTANGLE_API_KEY is set")


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer ...`` header, read as ``bearer`` above reads them."""
    scheme, _, credentials = (authorization or "").partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and credentials else None


def check_api_key(settings: Settings, token: str | None) -> None:
    if settings.api_key is None:
        return
    if token is None:
        raise Unauthorized(
            "Authorization",
            "a 'Bearer <api key>' header",
            "none",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not _matches(settings, token):
        raise Unauthorized(
            "Authorization",
            "the service's API key",
            "a different key",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _matches(settings: Settings, token: str | None) -> bool:
    """Whether ``token`` is the key set. Constant-time, so response timing does not leak how much of a guess was
    right."""
    assert settings.api_key is not None
    return token is not None and hmac.compare_digest(token.encode(), settings.api_key.get_secret_value().encode())


def key_given(settings: Settings, authorization: str | None) -> bool:
    """Whether a request may see what the key guards: no key is set, or its Authorization carries it."""
    return settings.api_key is None or _matches(settings, bearer_token(authorization))


async def require_api_key(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    check_api_key(settings, credentials.credentials if credentials is not None else None)
