"""The web UI in a real browser, used the way a PM would use it: Debian's Chromium, driven by
Playwright, against a live `logship dev` (embedded defaults) fed by a real `logship demo`.

Type the swap delivery's id into *Delivery ID*, see both robots and every event in the order
`logship session --json` gives, open an event and read its JSON, follow a robot to its day,
read the supply-hours headline the CLI prints. On every page: no request leaves the server, no
console error, and a screenshot under the test's temporary directory.

`LOGSHIP_SCREENSHOTS_DIR=docs/screenshots pytest tests/loader/ui/test_browser.py` also writes
the screenshots there (the README's pictures).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Route,
    expect,
    sync_playwright,
)

from tests.conftest import free_port

# One live stack for the module: the first test starts it; under xdist's `--dist loadgroup` all
# of the module's tests run in one worker, so it starts once.
pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("browser")]

#: The demo's day (any date works; a fixed one keeps the screenshots stable).
DAY = "2026-11-22"
#: Chromium here reaches nothing but loopback: without these flags it keeps trying Google's
#: services (updates, sync, field trials) and logs every refused connection.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
SCREENSHOTS_ENV = "LOGSHIP_SCREENSHOTS_DIR"
#: Read at import: tests/conftest.py clears every LOGSHIP_* variable before each test runs.
SCREENSHOTS_DIR = os.environ.get(SCREENSHOTS_ENV)


# ------------------------------------------------------------------------------ the live stack


@dataclass
class Stack:
    """A running `logship dev` with the demo day loaded; `cli` asks the CLI about it."""

    url: str  # the UI, http://127.0.0.1:port
    workdir: Path
    env: dict[str, str]
    swap_id: str
    swap_robots: list[str]  # in dispatch order
    deliveries: int

    def cli(self, *args: str) -> str:
        """`logship ARGS` against the same warehouse; retried while the loader holds the file."""
        deadline = time.monotonic() + 30
        while True:
            out = subprocess.run([_logship(), *args], cwd=self.workdir, env=self.env,
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
            if out.returncode == 0:
                return out.stdout
            assert time.monotonic() < deadline, f"logship {' '.join(args)}: {out.stderr}"
            time.sleep(0.5)


def _logship() -> str:
    """The `logship` console script of this environment (what a user runs)."""
    script = Path(sys.executable).with_name("logship")
    assert script.exists(), f"{script} missing: pip install -e '.[test]'"
    return str(script)


def _wait_for(predicate: Any, what: str, proc: subprocess.Popen[bytes], log: Path,
              timeout_s: float = 60) -> Any:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert proc.poll() is None, f"logship dev exited while waiting for {what}:\n" + _tail(log)
        assert time.monotonic() < deadline, f"{what} did not happen:\n" + _tail(log)
        time.sleep(0.2)
    return value


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _loaded_events(db: Path) -> int:
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return 0  # not created yet, or the loader holds it during a cycle
    try:
        return con.execute("SELECT count(*) FROM logship.events").fetchone()[0]  # type: ignore[index]
    except duckdb.Error:
        return 0
    finally:
        con.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("dev")
    port, lport, uport = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env.update(LOGSHIP_HTTP_ADDR=f"127.0.0.1:{port}", LOGSHIP_LOADER_HTTP_ADDR=f"127.0.0.1:{lport}",
               LOGSHIP_UI_HTTP_ADDR=f"127.0.0.1:{uport}")  # fmt: skip
    out, err = workdir / "dev.out", workdir / "dev.err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen([_logship(), "dev"], cwd=workdir, env=env, stdout=o, stderr=e)
    try:
        ui = f"http://127.0.0.1:{uport}"
        _wait_for(lambda: ui in out.read_text(), f"`logship dev` printing the UI's URL {ui}",
                  proc, err)  # fmt: skip
        demo = subprocess.run(
            [_logship(), "demo", "--url", f"http://127.0.0.1:{port}/v1/logs", "--date", DAY],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stderr
        accepted = int(re.search(r"accepted (\d+)", demo.stdout)[1])  # type: ignore[index]
        deliveries = int(re.search(r"(\d+) deliveries", demo.stdout)[1])  # type: ignore[index]
        swap = re.search(r"robot swap on (\S+) \(([^)]*)\)", demo.stdout)
        assert swap, demo.stdout
        db = workdir / "var" / "warehouse.duckdb"
        _wait_for(lambda: _loaded_events(db) == accepted, f"{accepted} events loaded", proc, err)
        yield Stack(ui, workdir, env, swap[1], swap[2].split(" -> "), deliveries)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def session_json(stack: Stack) -> list[dict[str, Any]]:
    """`logship session --json` of the swap delivery: what the delivery page must show."""
    return json.loads(stack.cli("session", stack.swap_id, "--json"))


# ------------------------------------------------------------------------------ the browser


def _chromium() -> str:
    path = shutil.which("chromium")
    assert path, (
        "Debian's chromium is not installed: run the README's test command (it installs it), "
        "or `apt-get install -y --no-install-recommends chromium`"
    )
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def context(playwright: Playwright, tmp_path_factory: pytest.TempPathFactory,
            stack: Stack) -> Iterator[BrowserContext]:  # fmt: skip
    """Chromium with a new, empty profile; every request not to the UI server is refused."""
    ctx = playwright.chromium.launch_persistent_context(
        tmp_path_factory.mktemp("profile"), executable_path=_chromium(), headless=True,
        args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900}, base_url=stack.url,
        timezone_id="UTC", locale="en-US", color_scheme="light",
    )  # fmt: skip
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@dataclass
class Watch:
    """What a page did besides showing: requests elsewhere, console errors, uncaught errors."""

    origin: str
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Paths (prefixes) the test expects a 4xx page from: Chromium logs each as a console error.
    failing: list[str] = field(default_factory=list)

    def _ours(self, url: str) -> bool:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" == self.origin or parts.scheme == "data"

    def route(self, route: Route) -> None:
        """Refuse anything not for the UI server: nothing reaches the network either way."""
        if self._ours(route.request.url):
            route.continue_()
        else:
            route.abort()

    def request(self, request: Request) -> None:
        if not self._ours(request.url):
            self.outside.append(request.url)

    def console(self, msg: ConsoleMessage) -> None:
        if msg.type != "error":
            return
        where = urlsplit(msg.location.get("url") or "").path
        if re.search(r"status of 4\d\d", msg.text) and where.startswith(tuple(self.failing)):
            return
        self.errors.append(f"console: {msg.text} at {msg.location}")


@pytest.fixture
def watch(stack: Stack) -> Watch:
    return Watch(stack.url)


@pytest.fixture
def page(context: BrowserContext, watch: Watch) -> Iterator[Page]:
    """A fresh tab; when the test is done, nothing left the server and nothing went wrong."""
    pg = context.new_page()
    pg.route("**/*", watch.route)
    pg.on("request", watch.request)
    pg.on("console", watch.console)
    pg.on("pageerror", lambda exc: watch.errors.append(f"pageerror: {exc}"))
    yield pg
    pg.close()
    assert watch.outside == [], "requests that left the server"
    assert watch.errors == [], "errors in the browser"


@pytest.fixture
def shot(tmp_path: Path) -> Any:
    """Save a screenshot of the page under tmp_path (and under $LOGSHIP_SCREENSHOTS_DIR)."""
    docs = SCREENSHOTS_DIR

    def save(page: Page, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=path, full_page=True)
        if docs:
            Path(docs).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=Path(docs) / f"{name}.png")
        assert path.stat().st_size > 0
        return path

    return save


def event_ids(page: Page) -> list[str]:
    """The event ids of the event table's rows, in page order (each row is `#ev-<event_id>`)."""
    return page.eval_on_selector_all("[id^='ev-']", "els => els.map(e => e.id.slice(3))")


# ------------------------------------------------------------------------------ the tests


def test_search_opens_the_swap_delivery_with_both_robots_and_every_event_in_order(
    page: Page, stack: Stack, session_json: list[dict[str, Any]], shot: Any
) -> None:
    page.goto("/")
    field_ = page.get_by_label("Delivery ID")
    expect(field_).to_be_focused()
    # The day's deliveries are listed below the search, each a link to its page.
    hrefs = page.locator("main a[href^='/deliveries/']").evaluate_all(
        "els => els.map(e => e.getAttribute('href'))"
    )
    assert len(set(hrefs)) == stack.deliveries
    assert f"/deliveries/{stack.swap_id}" in hrefs
    shot(page, "search")

    page.keyboard.type(stack.swap_id)  # the field has the focus: typing goes there
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/deliveries/{stack.swap_id}")
    robots = _fact(page, re.compile(r"^Robots?$"))
    assert [r for r in re.findall(r"\S+", robots) if r in stack.swap_robots] == stack.swap_robots
    assert _fact(page, "Events") == str(len(session_json))
    assert event_ids(page) == [e["event_id"] for e in session_json]
    for e in session_json:
        row = page.locator(f"[id='ev-{e['event_id']}']")
        expect(row).to_contain_text(e["event_name"])
        if e["robot_id"]:
            expect(row).to_contain_text(e["robot_id"])
    shot(page, "delivery")


def _fact(page: Page, name: str | re.Pattern[str]) -> str:
    """The value of a fact in the page's header (`<dt>name</dt><dd>value</dd>`)."""
    term = page.locator("dt").filter(has_text=name).first
    return " ".join(term.locator("xpath=following-sibling::dd[1]").inner_text().split())


def test_keyboard_moves_between_events_and_expands_one_to_its_json(
    page: Page, stack: Stack, session_json: list[dict[str, Any]]
) -> None:
    page.goto(f"/deliveries/{stack.swap_id}")
    first, second = session_json[0], session_json[1]
    page.locator("body").press("j")
    assert _current_event(page) == first["event_id"]
    page.keyboard.press("j")
    assert _current_event(page) == second["event_id"]
    page.keyboard.press("k")
    assert _current_event(page) == first["event_id"]
    assert page.url.endswith(f"#ev-{first['event_id']}")  # the URL is the permalink

    json_block = page.locator("pre:visible").filter(has_text=first["event_id"])
    expect(json_block).to_have_count(0)
    page.keyboard.press("Enter")
    expect(json_block).to_have_count(1)
    assert json.loads(json_block.inner_text()) == first  # exactly the CLI's JSON of the event
    page.keyboard.press("Enter")
    expect(json_block).to_have_count(0)


def _current_event(page: Page) -> str | None:
    """The event the keyboard is on: the row holding the focus."""
    return page.evaluate(
        "() => { const r = document.activeElement && document.activeElement.closest(\"[id^='ev-']\");"
        " return r ? r.id.slice(3) : null; }"
    )


def test_an_event_permalink_opens_it_and_copy_takes_its_json(
    page: Page, context: BrowserContext, stack: Stack, session_json: list[dict[str, Any]]
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.url)
    last = session_json[-1]
    page.goto(f"/deliveries/{stack.swap_id}#ev-{last['event_id']}")
    assert _current_event(page) == last["event_id"]
    row = page.locator(f"[id='ev-{last['event_id']}']")
    expect(row.locator("pre")).to_be_visible()
    row.get_by_role("button", name="Copy").click()
    expect(row.get_by_role("button", name="Copied")).to_be_visible()
    assert json.loads(page.evaluate("navigator.clipboard.readText()")) == last


def test_a_robot_link_opens_its_day(page: Page, stack: Stack, shot: Any) -> None:
    page.goto(f"/deliveries/{stack.swap_id}")
    first = stack.swap_robots[0]  # the robot whose lid failed: its day shows why
    page.get_by_role("link", name=first, exact=True).first.click()
    page.wait_for_url(re.compile(rf"/robots/{re.escape(first)}\?date={DAY}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(first)
    shot(page, "robot-day")
    # The deliveries the robot served that day link back, the swap among them.
    page.get_by_role("link", name=stack.swap_id, exact=True).first.click()
    page.wait_for_url(f"**/deliveries/{stack.swap_id}")


def test_supply_hours_shows_the_cli_headline(page: Page, stack: Stack, shot: Any) -> None:
    table = stack.cli("supply-hours", "--date", DAY).strip().splitlines()
    headline, robots = table[-1], [line.split()[0] for line in table[1:-1]]
    assert "of downtime was due to" in headline and robots
    page.goto(f"/supply-hours?date={DAY}")
    expect(page.locator(".headline")).to_have_text(headline)
    for robot in robots:  # each robot's bar links to its day
        expect(page.locator(f"svg a[href='/robots/{robot}?date={DAY}']")).to_have_count(1)
    shot(page, "supply-hours")
    # Why was a robot not available: the top reason's intervals and the deliveries they touched,
    # the swap among them (its first robot's lid failed).
    top = headline.split(" was due to ", 1)[1]
    page.get_by_role("link", name=top, exact=True).click()
    expect(page.get_by_role("heading", name=f"Intervals: {top}")).to_be_visible()
    assert f"reason={top}" in page.url
    expect(page.locator(f"a[href='/deliveries/{stack.swap_id}']")).not_to_have_count(0)


def test_funnel_shows_each_stage_as_the_cli_counts_it(page: Page, stack: Stack, shot: Any) -> None:
    (day,) = json.loads(stack.cli("funnel", "--date", DAY, "--json"))["days"]
    stages = {k.removesuffix("_s"): v["count"] for k, v in day.items() if isinstance(v, dict)}
    assert stages
    page.goto(f"/funnel?date={DAY}")
    for stage, count in stages.items():
        row = page.locator("tr").filter(has=page.get_by_role("link", name=stage, exact=True))
        expect(row.locator("td").nth(1)).to_have_text(str(count))
    shot(page, "funnel")


def test_slash_focuses_the_search_and_an_unknown_id_says_so(
    page: Page, stack: Stack, watch: Watch
) -> None:
    page.goto("/")
    field_ = page.get_by_label("Delivery ID")
    page.get_by_role("heading", level=1).click()
    expect(field_).not_to_be_focused()
    page.keyboard.press("/")
    expect(field_).to_be_focused()
    expect(field_).to_have_value("")  # the key focuses, it is not typed

    watch.failing.append("/search")
    field_.fill("D-0000")
    with page.expect_response(lambda r: r.request.is_navigation_request()) as answer:
        field_.press("Enter")
    assert answer.value.status == 404
    expect(page.get_by_role("alert")).to_contain_text("D-0000")
    expect(page.get_by_label("Delivery ID")).to_have_value("D-0000")  # the search, to go on

    # What a sender could put in an id never runs in the page.
    hostile = "<img src=x onerror=\"document.title='pwned'\">"
    page.get_by_label("Delivery ID").fill(hostile)
    with page.expect_response(lambda r: r.request.is_navigation_request()) as answer:
        page.get_by_label("Delivery ID").press("Enter")
    assert answer.value.status in (400, 404)
    assert page.title() != "pwned"
    expect(page.get_by_role("alert")).to_be_visible()
