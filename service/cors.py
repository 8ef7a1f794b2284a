"""CORS with Starlette's rules, its refusals in the service's error shape.

Starlette refuses a preflight it does not allow with a plain-text 400 ("Disallowed CORS origin, method");
this says the same in the one JSON shape every other refusal takes, naming what was refused and what is
allowed.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

from service.errors import Malformed, shown

ALLOWED_MESSAGE = "Disallowed CORS "


class ShapedCORS(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code != 400:
            return answer
        failures = bytes(answer.body).decode().removeprefix(ALLOWED_MESSAGE).split(", ")
        requested = {
            "origin": ("Origin", f"one of {sorted(self.allow_origins)}", request_headers.get("origin")),
            "method": (
                "Access-Control-Request-Method",
                f"one of {sorted(self.allow_methods)}",
                request_headers.get("access-control-request-method"),
            ),
            "headers": (
                "Access-Control-Request-Headers",
                f"only {sorted(self.allow_headers)}",
                request_headers.get("access-control-request-headers"),
            ),
            "private-network": ("Access-Control-Request-Private-Network", "no private network access", "a request"),
        }
        field, expected, received = requested.get(failures[0], (None, "an allowed CORS preflight", failures[0]))
        error = Malformed(field, expected, shown(received), hint=f"refused: {', '.join(failures)}")
        kept = {k: v for k, v in answer.headers.items() if k.lower().startswith("access-control-") or k == "vary"}
        return JSONResponse(error.body(), status_code=400, headers=kept)
