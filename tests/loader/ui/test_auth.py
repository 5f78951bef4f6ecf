"""`LOGSHIP_UI_TOKENS`: every page and API call needs a token (Bearer, or Basic with the token
as password); probes, scrapes and static files stay open; the token never reaches a log."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import aiohttp
import pytest

from loader.ui import UiSettings, serve_ui
from tests.loader.ui.conftest import serve

TOKEN = "ui-tok-9f8e7d6c5b4a"
OTHER = "second-token-1234"


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
async def guarded(duck: UiSettings, aiohttp_client: Any) -> Any:
    settings = duck.model_copy(update={"ui_tokens": type(duck.ui_tokens)(f"{TOKEN}, {OTHER}")})
    return await serve(settings, aiohttp_client)


async def test_pages_and_api_need_a_token(guarded: Any) -> None:
    for path in ("/", "/deliveries/D-1", "/api/deliveries/D-1", "/search?q=D-1", "/nowhere"):
        resp = await guarded.get(path, allow_redirects=False)
        assert resp.status == 401, path
        assert resp.headers["WWW-Authenticate"].startswith('Basic realm="logship"')
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
        body = await resp.text()
        assert "D-1" not in body or path == "/search?q=D-1"  # nothing of the data leaks
        assert "lid_error" not in body
    assert (await (await guarded.get("/api/funnel")).json())["error"] == "unauthorized"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": f"bearer {OTHER}"},
        basic("pm", TOKEN),
        basic("", OTHER),
    ],
)
async def test_a_token_opens_them(guarded: Any, headers: dict[str, str]) -> None:
    resp = await guarded.get("/deliveries/D-1", headers=headers)
    assert resp.status == 200 and "Delivery D-1" in await resp.text()
    assert (await guarded.get("/api/deliveries/D-1", headers=headers)).status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": "Bearer "},
        {"Authorization": TOKEN},
        {"Authorization": f"Token {TOKEN}"},
        basic(TOKEN, "wrong"),  # the token as user name is not the password
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()},
        {"X-Api-Key": TOKEN},
    ],
)
async def test_a_wrong_token_is_refused(guarded: Any, headers: dict[str, str]) -> None:
    assert (await guarded.get("/deliveries/D-1", headers=headers)).status == 401


@pytest.mark.parametrize(
    "header",
    [b"Basic \xc3\xa9", b"Bearer \xff\xfe", b"Basic \xff", b"Bearer " + TOKEN.encode() + b"\xff",
     b"Basic " + base64.b64encode(b"pm:" + TOKEN.encode() + b"\xed\xa0\x80")],
)  # fmt: skip
async def test_an_authorization_header_of_any_bytes_is_a_401(guarded: Any, header: bytes) -> None:
    """Bytes that are not ASCII, or not UTF-8, in the header (sent raw: a client library would
    refuse them) are a refusal like any wrong token, not a 500."""
    reader, writer = await asyncio.open_connection(guarded.server.host, guarded.server.port)
    try:
        writer.write(b"GET /deliveries/D-1 HTTP/1.1\r\nHost: ui\r\nAuthorization: " + header
                     + b"\r\nConnection: close\r\n\r\n")  # fmt: skip
        await writer.drain()
        status = await reader.readline()
        await reader.read()
    finally:
        writer.close()
    assert status.startswith(b"HTTP/1.1 401 "), status


async def test_probes_scrapes_and_static_files_stay_open(guarded: Any) -> None:
    assert (await guarded.get("/healthz")).status == 200
    assert (await guarded.get("/metrics")).status == 200
    page = await (await guarded.get("/", headers={"Authorization": f"Bearer {TOKEN}"})).text()
    css = page.split('rel="stylesheet" href="')[1].split('"')[0]
    resp = await guarded.get(css)
    assert resp.status == 200 and resp.content_type == "text/css"
    assert "immutable" in resp.headers["Cache-Control"]


async def test_the_token_is_never_logged(
    duck: UiSettings, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A real server, logging at DEBUG: every request is logged (route, status) — never the
    Authorization header or the token, refused or accepted. The records are read as they are
    made (before any redaction of the JSON formatter)."""
    settings = duck.model_copy(update={"ui_tokens": type(duck.ui_tokens)(TOKEN)})
    caplog.set_level(logging.DEBUG)
    stop = asyncio.Event()
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_ui(settings, stop, started))
    url = await started
    try:
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": f"Bearer {TOKEN}"},
                            {"Authorization": f"Bearer {TOKEN}-wrong"}, basic("pm", TOKEN)):  # fmt: skip
                async with http.get(url + "deliveries/D-1", headers=headers) as resp:
                    await resp.read()
            async with http.get(url + f"search?q={TOKEN}", headers=basic("pm", TOKEN)) as resp:
                assert resp.status == 404  # the token typed into the search: not an id we know
    finally:
        stop.set()
        assert await task == 0
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "ui request" in logged and "/deliveries/{delivery_id}" in logged
    out, err = capfd.readouterr()
    for text in (logged, out, err):
        assert TOKEN not in text
        assert base64.b64encode(f"pm:{TOKEN}".encode()).decode() not in text
