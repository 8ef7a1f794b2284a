"""The API docs, Swagger UI at /docs and ReDoc at /redoc, served from this machine: nothing from a CDN.

Their scripts come from the fastapi-offline package on PyPI, served under /docs-assets (ReDoc's with its one
outside address, a logo, replaced); the pages are ours, so
that no inline script needs the Content-Security-Policy relaxed (Swagger UI's settings are in
static/swagger-init.js). Paths are relative, as on the page, so the docs work under a proxy's prefix.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

ASSETS = Path(str(files("fastapi_offline") / "static"))
ASSETS_PATH = "/docs-assets"
# ReDoc's bundle shows Redocly's logo from their CDN in its menu; an empty picture of our own stands in.
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_PICTURE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"

router = APIRouter(include_in_schema=False)

SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>disentangle · API docs</title>
  <link rel="icon" type="image/png" href="docs-assets/favicon.png">
  <link rel="stylesheet" href="docs-assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs-assets/swagger-ui-bundle.js"></script>
  <script src="static/swagger-init.js"></script>
</body>
</html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>disentangle · API reference</title>
  <link rel="icon" type="image/png" href="docs-assets/favicon.png">
</head>
<body>
  <redoc spec-url="openapi.json"></redoc>
  <script src="docs-assets/redoc.standalone.js"></script>
</body>
</html>
"""


@cache
def _redoc_script() -> bytes:
    return (ASSETS / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO, EMPTY_PICTURE)


@router.get(f"{ASSETS_PATH}/redoc.standalone.js")
async def redoc_script() -> Response:
    return Response(_redoc_script(), media_type="text/javascript")


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(SWAGGER_PAGE)


@router.get("/redoc", response_class=HTMLResponse)
async def redoc() -> HTMLResponse:
    return HTMLResponse(REDOC_PAGE)
