"""How many body bytes each route may take: its budget, known before a byte of the body is read.

A body over its route's budget is refused with a 413 from its Content-Length, before it is read, or, sent
without one (chunked), as soon as the bytes counted pass the budget (service/middleware.py). Routes that take
latents and options have a budget sized for them (``MAX_LATENT_BODY_BYTES``: 256 latents of a few hundred
dims as JSON need well under 1 MiB); image uploads and every other route take ``MAX_BODY_BYTES``. Whatever
shape a body has, what parsing it may cost in memory and CPU is then bounded by its budget.
"""

from __future__ import annotations

from service.settings import Settings

LATENT_ROUTES = ("/decode", "/traverse", "/synthesize")


def body_budgets(settings: Settings) -> dict[str, int]:
    """Budget by path; a path not named here has ``settings.max_body_bytes``."""
    latent = min(settings.max_latent_body_bytes, settings.max_body_bytes)
    return dict.fromkeys(LATENT_ROUTES, latent)
