"""The headers every answer carries, and the optional token check (`LOGSHIP_UI_TOKENS`).

The CSP allows nothing but this server's own script, style sheet and images (inline SVG is
part of the document; `data:` images only for the browser's own form controls): no inline
script, no inline style, no framing, no `<base>`, forms post only here. Tokens are compared
in constant time and never logged; `/healthz`, `/metrics` and `/static/` stay open so probes,
scrapes and the 401 page's style sheet work.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence

from aiohttp import web

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")  # fmt: skip
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), clipboard-write=(self)",
}
#: Answers for people or tools, from live data: never stored by a shared cache.
NO_STORE = "no-store"
#: Paths served without a token.
OPEN_PATHS = ("/healthz", "/metrics")
OPEN_PREFIXES = ("/static/",)
CHALLENGE = 'Basic realm="logship", charset="UTF-8"'


def apply_headers(resp: web.StreamResponse) -> None:
    for k, v in HEADERS.items():
        resp.headers.setdefault(k, v)
    resp.headers.setdefault("Cache-Control", NO_STORE)
    resp.headers["Server"] = "logship"  # not the library and Python versions


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def authorized(header: str | None, tokens: Sequence[str]) -> bool:
    """`Authorization: Bearer <token>`, or `Basic` with the token as the password (any user
    name, so a browser's sign-in prompt works)."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        given = value
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
        except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 inside
            return False
    else:
        return False
    # Header bytes that are not UTF-8 arrive as surrogate escapes: compared as those bytes.
    try:
        raw = given.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    ok = False
    for token in tokens:  # every token compared: the time does not tell which one matched
        ok |= hmac.compare_digest(raw, token.encode())
    return ok
