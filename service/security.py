"""What the browser is told and which Host headers are answered: security headers and trusted hosts.

The page, /static and the API docs are public by design: they hold no data, and every call that reads or
makes data needs the API key when one is set. What protects them and their users is here:

- Host headers: a name that is not trusted gets a 400 before anything else runs. A web page on another site
  could otherwise point a DNS name of its own at 127.0.0.1 (DNS rebinding) and call a loopback-bound service
  that has no key as if it were same-origin.
- Every response carries a Content-Security-Policy that allows only this origin's scripts, styles and
  connections (the page and the docs load nothing from elsewhere), forbids framing, and sends no referrer.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.errors import Malformed, Rejected, shown

WILDCARD = "*"
# What a browser on this machine calls a loopback-bound service. Always trusted: a rebinding page's requests
# carry its own name, never these.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")

# The page: its own scripts and styles, decoded pictures as data: URLs, card pictures as blob: URLs.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
# Swagger UI and ReDoc set inline styles, and ReDoc runs its search in a worker made from a blob: URL.
DOCS_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc"})

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
PAGE_HEADERS = [*_COMMON, (b"content-security-policy", PAGE_POLICY.encode())]
DOCS_HEADERS = [*_COMMON, (b"content-security-policy", DOCS_POLICY.encode())]


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    return DOCS_HEADERS if path in DOCS_PATHS else PAGE_HEADERS


def _hostname(host: str) -> str:
    """ "Example.COM:8000" -> "example.com"; "[::1]:8000" -> "[::1]"; "::1" -> "[::1]"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    if host.count(":") > 1:  # a bare IPv6 address, as a setting may give it
        return f"[{host}]"
    return host.split(":", 1)[0]


class TrustedHosts:
    """Host header names the service answers: exact names, "*.domain" for its subdomains, or "*" for any."""

    def __init__(self, names: Sequence[str], bound: str) -> None:
        wanted = [_hostname(name) for name in (*LOOPBACK_NAMES, *names)]
        # The address the service is bound to is how it is reached when it is not on loopback.
        if bound not in ("0.0.0.0", "::", ""):
            wanted.append(_hostname(bound))
        self.any = WILDCARD in wanted
        self.exact = frozenset(n for n in wanted if not n.startswith("*."))
        self.suffixes = tuple(n[1:] for n in wanted if n.startswith("*."))  # ".example.com"
        self.shown = sorted(set(wanted))

    def allows(self, host: str | None) -> bool:
        if self.any:
            return True
        if not host:
            return False
        name = _hostname(host)
        return name in self.exact or name.endswith(self.suffixes)

    def rejection(self, host: str | None) -> Rejected:
        return Malformed(
            "Host",
            f"one of the trusted hosts {self.shown}",
            shown(host) if host else "none",
            hint="set DISENTANGLE_TRUSTED_HOSTS to the names clients use to reach the service",
        )
