"""Escape-by-default HTML: every value is text until proven markup.

Pages are built from literal templates in the code and values from the warehouse — ids,
properties and reasons come from senders and are hostile. :func:`html` formats a literal
template with its values escaped (quotes included, so a value is safe in an attribute too);
only a :class:`Safe` value — the output of :func:`html` itself or of :func:`join` — passes
unescaped. There is no other way to put a value into a page, so forgetting to escape is not
possible by construction: building markup with an f-string is the one thing not to do here.
"""

from __future__ import annotations

import html as _html
import re
import string
import urllib.parse
from collections.abc import Iterable
from typing import Any


class Safe(str):
    """Markup already built by this module (never a raw value)."""

    __slots__ = ()


#: Characters that would act instead of showing: C0 controls but tab and newline, DEL, C1
#: controls, line/paragraph separators and the bidirectional marks, embeddings, overrides
#: and isolates (an `U+202E` in a robot id must not reverse the rest of its table row).
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def esc(value: object) -> Safe:
    """`value` as HTML text (`<`, `>`, `&`, `"`, `'` escaped, invisible controls written as
    `\\x1b` / `\\u202e`); a :class:`Safe` stays as is."""
    if isinstance(value, Safe):
        return value
    text = _INVISIBLE.sub(_visible, "" if value is None else str(value))
    return Safe(_html.escape(text, quote=True))


class _Escaping(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Safe):
            return value
        if value is None:
            return ""
        return esc(format(value, format_spec))

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:
            raise ValueError("html(): conversions (!r, !s) are not allowed")
        return value


_FORMATTER = _Escaping()


def html(template: str, /, **values: object) -> Safe:
    """`template` (a literal) with each `{name}` / `{name:spec}` replaced by the value, escaped
    (None as nothing)."""
    return Safe(_FORMATTER.vformat(template, (), values))


def join(parts: Iterable[object], sep: str = "") -> Safe:
    """Several pieces as one; a piece that is not :class:`Safe` is escaped."""
    return Safe(esc(sep).join(esc(p) for p in parts))


def seg(value: object) -> str:
    """`value` as one URL path segment or query value: everything but unreserved characters
    percent-encoded (`/`, `?`, `#` and `..` cannot change the URL's meaning)."""
    return urllib.parse.quote(str(value), safe="")


def query(**params: object) -> str:
    """A query string (`?a=1&b=2`) of the params that are not None."""
    items = [(k, str(v)) for k, v in params.items() if v is not None]
    return ("?" + urllib.parse.urlencode(items)) if items else ""
