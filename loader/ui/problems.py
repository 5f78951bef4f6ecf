"""Every answer that is not the page asked for, as data: status code, title, Retry-After.

Routes and the warehouse visits raise :class:`Problem`; the middleware renders it once, as an
HTML page for a page route or a JSON object for `/api/…`. Bad input is a 400 or 404 with a
page that says what was wrong and offers the search — never a 500. A warehouse that cannot answer
(the loader waiting for or writing the DuckDB file, unreachable, nothing loaded yet) is a
503 that says which.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    status: int
    code: str  # the `error` of a JSON answer and the `reason` label of the metric
    title: str
    retry_after_s: int | None = None


BAD_INPUT = Kind(400, "bad_input", "That request is not valid")
UNAUTHORIZED = Kind(401, "unauthorized", "Sign-in required")
NOT_FOUND = Kind(404, "not_found", "Not found")
METHOD_NOT_ALLOWED = Kind(405, "method_not_allowed", "Method not allowed")
#: A download of more events than `LOGSHIP_UI_MAX_DOWNLOAD_EVENTS`: well-formed, but not
#: something this server builds (the CLI and the warehouse's views have no such bound).
TOO_LARGE = Kind(422, "too_large", "Too many events to download here")
BUSY = Kind(503, "busy", "The warehouse is busy", retry_after_s=2)
NO_DATA = Kind(503, "no_data", "Nothing has been loaded yet", retry_after_s=10)
UNAVAILABLE = Kind(503, "unavailable", "The warehouse cannot answer right now", retry_after_s=10)
#: The 503s, for the metric's label values.
WAREHOUSE_KINDS = (BUSY, NO_DATA, UNAVAILABLE)


class Problem(Exception):
    """A :class:`Kind` with a one-sentence `detail` for the reader (plain text, escaped when
    shown); `search` pre-fills the search field of the page (e.g. the id not found)."""

    def __init__(self, kind: Kind, detail: str, *, search: str | None = None):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.search = search
