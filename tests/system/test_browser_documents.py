"""The documents example end to end in real Chromium: two users, real processes, no mocks.

Everything is real: a private Redis, the gateway, presence and sessions services,
the example app (examples/documents) on its own port — so the page is on
another origin than the gateway and every SDK import and /v2/sync call goes
through CORS — and Debian's /usr/bin/chromium driven by Playwright (`make
browser` installs it; `playwright install` is never used). Each user is a browser
context (own cookies, own localStorage); the same user's tabs share one.

Tests wait on conditions (Playwright's `expect`, `wait_for_function`), except
where the claim itself is about time: "no leave within the grace period" has to
let the grace period pass.

`DOCS_SCREENSHOT=1` makes the first test rewrite docs/documents-example.png.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_api
from playwright.sync_api import Page, expect

from goldwire.cli.procutil import parent_death_signal
from tests.support import API_KEY, SECRET, Gateway, Presence, Sessions, free_port, wait_ready

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "documents-example.png"
GRACE = 3.0  # PRESENCE_LEAVE_GRACE for these tests: longer than a page reload here
TIMEOUT = 15_000  # ms, for every condition; generous for a loaded 2-core machine

pytestmark = [
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason=f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"),
    pytest.mark.timeout(120),
]

NUMBER = re.compile(r"^\d+$")


class App:
    """The example app as its own process (`python -m examples.documents --port N`)."""

    def __init__(self, gateway_http: str, data_file: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "GOLDWIRE_HTTP": gateway_http, "JWT_SECRET": SECRET,
                    "API_KEYS": API_KEY, "DOCUMENTS_FILE": str(data_file)}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> App:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "examples.documents", "--port", str(self.port)],
            cwd=ROOT, env=self.env, preexec_fn=parent_death_signal(signal.SIGKILL))
        wait_ready(self.proc, self.url + "/login", "the documents app")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Stack:
    def __init__(self, gateway: Gateway, app: App) -> None:
        self.gateway, self.app = gateway, app


@pytest.fixture(scope="module")
def stack(redis_server, tmp_path_factory) -> Iterator[Stack]:
    prefix = "gwtest:" + uuid.uuid4().hex[:8]
    sessions = Sessions(redis_server.url, prefix).start()
    presence = Presence(redis_server.url, prefix, presence_leave_grace=GRACE).start()
    # The app's port is chosen first so the gateway can allow exactly its origin.
    app = App("", tmp_path_factory.mktemp("documents") / "documents.json")
    gateway = Gateway(redis_server.url, prefix, sessions_url=sessions.http,
                      presence_url=presence.http, activity_url="http://127.0.0.1:9",
                      allowed_origins=app.url).start()
    app.env["GOLDWIRE_HTTP"] = gateway.http
    app.start()
    yield Stack(gateway, app)
    app.stop()
    for proc in (gateway, presence, sessions):
        proc.terminate()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def contexts(browser) -> Iterator[Callable[[], Any]]:
    """New browser contexts (one per user), closed after the test."""
    made: list[Any] = []

    def new() -> Any:
        ctx = browser.new_context(viewport={"width": 1000, "height": 720})
        ctx.set_default_timeout(TIMEOUT)
        made.append(ctx)
        return ctx

    yield new
    for ctx in made:
        ctx.close()


class Frames:
    """Every WebSocket frame a page sends and receives, decoded, across reconnects."""

    def __init__(self, page: Page) -> None:
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.sockets = 0
        page.on("websocket", self._socket)

    def _socket(self, ws: Any) -> None:
        self.sockets += 1
        ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: self.received.append(json.loads(payload)))


def sign_in(ctx: Any, stack: Stack, user: str, doc: str) -> Page:
    page = ctx.new_page()
    page.goto(f"{stack.app.url}/login?next=/doc/{doc}")
    page.click(f"button[value={user}]")
    return wait_loaded(page)


def wait_loaded(page: Page) -> Page:
    """The document is loaded and the socket is live."""
    expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    expect(page.locator("#body")).to_have_attribute("data-version", NUMBER)
    return page


def viewer(page: Page, user: str) -> Any:
    return page.locator(f"#viewers li[data-user={user}]")


def test_two_users_see_each_other_and_each_others_edits(stack, contexts) -> None:
    alice = sign_in(contexts(), stack, "alice", "1")
    bob = sign_in(contexts(), stack, "bob", "1")
    expect(viewer(alice, "bob")).to_have_attribute("data-status", "online")
    expect(viewer(bob, "alice")).to_have_attribute("data-status", "online")

    bob.select_option("#status", "busy")
    expect(viewer(alice, "bob")).to_have_attribute("data-status", "busy")
    expect(viewer(alice, "bob")).to_contain_text("Bob Okafor · busy")

    text = "1. Parties\nThe Landlord, the Tenant and the Guarantor agree as follows."
    alice.fill("#body", text)
    expect(bob.locator("#body")).to_have_value(text)
    expect(bob.locator("#saved")).to_contain_text("saved by Alice Park")

    if os.environ.get("DOCS_SCREENSHOT"):
        bob.fill("#comment", "Guarantor added: please check clause 4.")
        bob.click("#comment-form button")
        expect(alice.locator("#comments")).to_contain_text("Guarantor added")
        side_by_side(alice, bob, SCREENSHOT)


def test_a_comment_notifies_the_owner(stack, contexts) -> None:
    bob = sign_in(contexts(), stack, "bob", "2")  # bob owns document 2
    alice = sign_in(contexts(), stack, "alice", "2")
    before = int(bob.locator("#bell .count").inner_text())
    alice_before = alice.locator("#bell .count").inner_text()

    alice.fill("#comment", "Clause 3 needs a carve-out for regulators.")
    alice.click("#comment-form button")

    expect(bob.locator("#bell .count")).to_have_text(str(before + 1))
    expect(bob.locator("#comments")).to_contain_text("carve-out for regulators")  # live
    expect(bob.locator("#inbox li.unread").first).to_contain_text("Alice Park commented")
    # The author is not notified of their own comment.
    expect(alice.locator("#comments")).to_contain_text("carve-out for regulators")
    assert alice.locator("#bell .count").inner_text() == alice_before


def test_a_preference_changed_in_one_tab_shows_in_another(stack, contexts) -> None:
    ctx = contexts()  # one user, two tabs: same cookies, same localStorage
    first = sign_in(ctx, stack, "carol", "3")
    second = ctx.new_page()
    second.goto(f"{stack.app.url}/doc/3")
    wait_loaded(second)
    html = "html"
    start = first.locator(html).get_attribute("data-theme")
    expect(second.locator(html)).to_have_attribute("data-theme", start or "light")

    first.click("#theme")
    flipped = "dark" if start != "dark" else "light"
    expect(first.locator(html)).to_have_attribute("data-theme", flipped)
    expect(second.locator(html)).to_have_attribute("data-theme", flipped)

    second.click("#theme")  # and back, from the other tab, on the version it was pushed
    expect(first.locator(html)).to_have_attribute("data-theme", start or "light")


def test_a_reload_shows_no_leave_or_join_to_the_other_user(stack, contexts) -> None:
    observer = contexts().new_page()
    frames = Frames(observer)
    observer.goto(f"{stack.app.url}/login?next=/doc/3")
    observer.click("button[value=alice]")
    wait_loaded(observer)
    bob = sign_in(contexts(), stack, "bob", "3")
    bob_frames = Frames(bob)
    expect(viewer(observer, "bob")).to_be_visible()
    seen = len(frames.received)

    bob.reload()
    wait_loaded(bob)
    connect = next(f for f in bob_frames.sent if f["op"] == "connect")
    assert connect.get("session_id"), "the SDK kept the session id across the reload"
    reply = next(f for f in bob_frames.received if f.get("ref") == connect["ref"])
    assert reply["data"]["session"]["resumed"] is True

    # The claim is about time: nothing for longer than the grace period after the old
    # socket closed. Then a status change proves the observer's feed is still flowing.
    observer.wait_for_timeout((GRACE + 1) * 1000)
    bob.select_option("#status", "away")
    expect(viewer(observer, "bob")).to_have_attribute("data-status", "away")

    diffs = [f["data"] for f in frames.received[seen:]
             if f["type"] == "presence_update" and f["data"]["kind"] == "diff"]
    moved = [m["user"]["id"] for d in diffs for m in d.get("joins", []) + d.get("leaves", [])]
    assert "bob" not in moved, diffs
    assert frames.sockets == 1  # and the observer itself never reconnected


def test_a_gateway_killed_with_sigkill_loses_no_edit(stack, contexts) -> None:
    alice = sign_in(contexts(), stack, "alice", "1")
    bob = sign_in(contexts(), stack, "bob", "1")
    # One edit while all is well, so bob holds a real offset of the room to resume from.
    alice.fill("#body", "Lease, before the outage.")
    expect(bob.locator("#body")).to_have_value("Lease, before the outage.")
    base = int(bob.locator("#body").get_attribute("data-version") or 0)
    bob_frames = Frames(bob)  # from now on: the sockets after the restart
    bob.evaluate("window.sameDocument = true")  # gone if the page reloads itself

    stack.gateway.kill()  # SIGKILL: no drain, no close frame
    expect(bob.locator("#conn")).not_to_have_attribute("data-state", "connected")

    # Alice keeps working: the app saves each edit and queues its publish.
    texts = [f"Lease, draft {i} written while the gateway was down." for i in (1, 2, 3)]
    for i, text in enumerate(texts, start=1):
        alice.fill("#body", text)
        expect(alice.locator("#body")).to_have_attribute("data-version", str(base + i))

    restarted = time.monotonic()
    stack.gateway.start()  # same port
    expect(bob.locator("#body")).to_have_value(texts[-1], timeout=30_000)
    print(f"bob had every edit {time.monotonic() - restarted:.1f}s after the gateway restarted")
    expect(bob.locator("#body")).to_have_attribute("data-version", str(base + len(texts)))
    expect(alice.locator("#conn")).to_have_attribute("data-state", "connected")

    assert bob.evaluate("window.sameDocument") is True  # reconnected by itself, no reload
    join = next(f for f in bob_frames.sent if f.get("op") == "join" and f["room"] == "doc:1")
    assert join.get("since") not in (None, "0-0"), "rejoined from the last offset it had"
    reply = next(f for f in bob_frames.received if f.get("ref") == join["ref"])
    assert reply["data"]["recovered"] is True  # caught up by offset, not by reloading
    versions = [f["data"]["changes"]["version"] for f in bob_frames.received
                if f.get("type") == "document_update"]
    assert sorted(set(versions)) == list(range(base + 1, base + len(texts) + 1)), versions


def test_the_page_is_on_another_origin_than_the_gateway(stack, contexts) -> None:
    page = contexts().new_page()
    responses: list[Any] = []
    page.on("response", lambda response: responses.append(response))
    page.goto(f"{stack.app.url}/login?next=/doc/2")
    page.click("button[value=carol]")
    wait_loaded(page)

    gateway, app = stack.gateway.http, stack.app.url
    assert page.evaluate("location.origin") == app != gateway
    sdk = [r for r in responses if r.url == f"{gateway}/sdk/goldwire.js"]
    assert sdk and sdk[0].status == 200
    assert sdk[0].header_value("access-control-allow-origin") == app
    synced = [r for r in responses if r.url.startswith(f"{gateway}/v2/sync/")]
    assert {r.url.split("?")[0].rsplit("/", 1)[1] for r in synced} >= {"preferences",
                                                                       "notifications"}
    for r in synced:
        assert r.status == 200 and r.header_value("access-control-allow-origin") == app


def side_by_side(left: Page, right: Page, path: Path) -> None:
    """One PNG of two pages next to each other, drawn by Chromium itself (no image library)."""
    shots = [base64.b64encode(p.screenshot()).decode() for p in (left, right)]
    canvas = left.context.browser.new_page(viewport={"width": 2020, "height": 740})
    canvas.set_content(
        '<body style="margin:0;background:#888;display:flex;gap:20px;padding:10px">'
        + "".join(f'<img src="data:image/png;base64,{s}" width="990">' for s in shots)
        + "</body>")
    canvas.wait_for_function("[...document.images].every((i) => i.complete)")
    canvas.screenshot(path=str(path), full_page=True)
    canvas.close()


PROBE = """async (gateway) => {
    let fetched;
    try { await fetch(gateway + "/sdk/goldwire.js"); fetched = "allowed"; }
    catch (e) { fetched = "blocked"; }
    const socket = await new Promise((resolve) => {
        const ws = new WebSocket(gateway.replace("http", "ws") + "/ws");
        ws.onopen = () => { ws.close(); resolve("open"); };
        ws.onerror = () => resolve("refused");
    });
    return {fetched, socket};
}"""


def test_a_page_on_an_origin_not_allowed_gets_neither_sync_nor_socket(stack, contexts) -> None:
    """`localhost` is another origin than the allowed `127.0.0.1`: the same app, refused.
    The same probe from the allowed origin is the control: fetched, and the socket opens."""
    page = contexts().new_page()
    page.goto(f"{stack.app.url}/login")
    assert page.evaluate(PROBE, stack.gateway.http) == {"fetched": "allowed", "socket": "open"}
    page.goto(f"{stack.app.url.replace('127.0.0.1', 'localhost')}/login")
    assert page.evaluate(PROBE, stack.gateway.http) == {"fetched": "blocked",
                                                        "socket": "refused"}
