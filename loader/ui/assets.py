"""The UI's static files, served under names that carry their content hash.

`/static/app.<sha>.css`, `/static/app.<sha>.js` and the icon never change once named, so browsers may
keep them for a year; a new release names new files. Only these exact names are served: no
part of a request path ever reaches the file system.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

_DIR = Path(__file__).with_name("static")


@dataclass(frozen=True)
class Asset:
    url: str
    body: bytes
    content_type: str


def _asset(name: str, content_type: str) -> Asset:
    body = (_DIR / name).read_bytes()
    stem, ext = name.rsplit(".", 1)
    digest = hashlib.sha256(body).hexdigest()[:12]
    return Asset(f"/static/{stem}.{digest}.{ext}", body, content_type)


CSS = _asset("app.css", "text/css; charset=utf-8")
JS = _asset("app.js", "text/javascript; charset=utf-8")
ICON = _asset("icon.svg", "image/svg+xml")
BY_URL = {a.url: a for a in (CSS, JS, ICON)}
