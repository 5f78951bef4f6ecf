"""The escape-by-default HTML helper: a value can only enter a page as text."""

from __future__ import annotations

import pytest

from loader.ui.html import Safe, esc, html, join, query, seg


def test_values_are_escaped_in_text_and_attributes() -> None:
    out = html('<a href="/x?{q}" title="{t}">{t}</a>', q="a&b", t='"><script>alert(1)</script>')
    assert out == (
        '<a href="/x?a&amp;b" title="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">'
        "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</a>"
    )
    assert html("<p>{v}</p>", v="it's") == "<p>it&#x27;s</p>"
    assert html("<p>{n:.2f} {m}</p>", n=1.23456, m=None) == "<p>1.23 </p>"


def test_only_markup_built_here_passes_unescaped() -> None:
    inner = html("<b>{x}</b>", x="<i>")
    assert isinstance(inner, Safe)
    assert html("<p>{inner}</p>", inner=inner) == "<p><b>&lt;i&gt;</b></p>"
    assert join(["<x>", inner], ", ") == "&lt;x&gt;, <b>&lt;i&gt;</b>"
    with pytest.raises(ValueError, match="conversions"):
        html("{x!r}", x="<x>")  # repr() would bypass the escaping


def test_invisible_characters_show_as_escapes() -> None:
    # a right-to-left override in a robot id must not reorder the row; ESC, NUL, CR show too
    assert esc("R-1\u202e7-R") == "R-1\\u202e7-R"
    assert esc("a\x1b[2Jb\x00c\rd") == "a\\x1b[2Jb\\x00c\\x0dd"
    assert esc("line\n\tnext") == "line\n\tnext"  # layout whitespace stays (JSON in <pre>)


def test_url_pieces_cannot_change_the_url() -> None:
    assert seg("../a/b?c#d") == "..%2Fa%2Fb%3Fc%23d"
    assert seg("D 1") == "D%201"
    assert query(date="2026-03-05", reason="<x>&y=1", robot=None) == (
        "?date=2026-03-05&reason=%3Cx%3E%26y%3D1"
    )
    assert query() == ""
