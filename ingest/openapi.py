"""The OpenAPI document of the HTTP API (``ingest/data/openapi.yaml``), served at ``GET /openapi.yaml``.

The file is package data, so an installed server serves the document of its own version. It is
read once, when the app is built, and served as-is (comments included) on every request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files

from aiohttp import web

CONTENT_TYPE = "application/yaml"  # RFC 9512


def spec_bytes() -> bytes:
    """The document as shipped in the package."""
    return files("ingest").joinpath("data", "openapi.yaml").read_bytes()


def openapi_handler() -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler serving the document, read now (at app build), not per request."""
    body = spec_bytes()

    async def handle_openapi(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=CONTENT_TYPE, charset="utf-8")

    return handle_openapi
