"""Presence webhooks: signed, retried by arq while the receiver fails, never in the way.

A real HTTP receiver (`http.server` in a thread) stands in for a backend. It
verifies what a receiver should (the timestamped signature, and a timestamp at
most 5 minutes old: else 401, so a replayed delivery is refused) and records
every attempt (status answered, headers, body). The presence process runs with a
short leave grace so room leaves arrive fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.support import Client, Gateway, Presence, free_port, jobs_url, token, until

pytestmark = pytest.mark.asyncio

WEBHOOK_SECRET = "webhook-secret-for-tests"
MAX_AGE = 300  # seconds: what this receiver accepts as fresh


def verify(secret: str, headers: Any, body: bytes, now: float) -> bool:
    """What a receiver does: HMAC-SHA256 of `<timestamp>.<body>`, and a fresh timestamp."""
    ts = headers.get("X-Goldwire-Timestamp", "")
    if not ts.isdigit() or abs(now - int(ts)) > MAX_AGE:
        return False
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Goldwire-Signature-V2", ""), "sha256=" + mac)


@dataclass
class Delivery:
    status: int  # what the receiver answered
    signature: str
    body: bytes
    timestamp: str = ""
    verified: bool = False  # the timestamped signature checked out, and was fresh

    @property
    def change(self) -> dict[str, Any]:
        return json.loads(self.body)

    def signed(self, secret: str = WEBHOOK_SECRET) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.signature, expected)


class Receiver:
    """A backend's webhook endpoint: answers 401 to a delivery it cannot verify, else
    `status` (200, or 500 to fail), and records each attempt."""

    def __init__(self) -> None:
        self.status = 200
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify(WEBHOOK_SECRET, self.headers, body, time.time())
                with receiver.lock:
                    status = receiver.status if ok else 401
                    receiver.deliveries.append(
                        Delivery(status, self.headers.get("X-Goldwire-Signature", ""), body,
                                 self.headers.get("X-Goldwire-Timestamp", ""), ok))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/presence"

    def attempts(self, status: int | None = None) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if status is None or d.status == status]

    def delivered(self) -> list[dict[str, Any]]:
        """The changes the receiver accepted (answered 2xx)."""
        return [d.change for d in self.attempts(200)]

    async def wait_for(self, expected: list[dict[str, Any]], attempts: int = 1,
                       status: int = 200, timeout: float = 20) -> None:
        """Until every expected change (a subset of its fields) was answered `status`
        at least `attempts` times (by default: until each was accepted)."""
        # The receiver is a thread: poll what it recorded.
        await until(lambda: self._seen(expected, attempts, status), timeout=timeout)

    def _seen(self, expected: list[dict[str, Any]], attempts: int, status: int) -> bool:
        got = [d.change for d in self.attempts(status)]
        return all(sum(_matches(c, e) for c in got) >= attempts for e in expected)


def _matches(change: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(change.get(k) == v for k, v in expected.items())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    rec.thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def stack(redis_server, key_prefix: str,
          receiver: Receiver) -> Iterator[tuple[Presence, Gateway]]:
    presence = Presence(redis_server.url, key_prefix, presence_webhook_url=receiver.url,
                        presence_webhook_secret=WEBHOOK_SECRET,
                        presence_leave_grace=0.3).start()
    gateway = Gateway(redis_server.url, key_prefix).start()
    yield presence, gateway
    gateway.terminate()
    presence.terminate()


def room() -> str:
    return "doc:" + uuid.uuid4().hex[:8]


async def joined(gateway: Gateway, user: str, room_name: str) -> Client:
    """A connection in `room_name`, once presence has stored its join (its state came)."""
    client = await Client.open(gateway.url, token(user),
                               rooms=[{"room": room_name}])
    msg = await client.recv_type("presence_update")
    assert msg["data"]["kind"] == "state", msg
    return client


async def next_diff(client: Client) -> dict[str, Any]:
    while True:
        msg = await client.recv_type("presence_update")
        if msg["data"]["kind"] == "diff":
            return msg["data"]


async def test_signed_events_for_online_join_leave_offline(stack, receiver: Receiver) -> None:
    _, gateway = stack
    user, name = "ada-" + uuid.uuid4().hex[:6], room()
    ada = await joined(gateway, user, name)
    await ada.ok("leave", room=name)
    await ada.close()

    expected = [
        {"kind": "user_online", "tenant": "default", "user": user, "status": "online"},
        {"kind": "room_join", "tenant": "default", "user": user, "room": name},
        {"kind": "room_leave", "tenant": "default", "user": user, "room": name},
        {"kind": "user_offline", "tenant": "default", "user": user},
    ]
    await receiver.wait_for(expected)

    attempts = receiver.attempts()
    assert all(d.verified for d in attempts), attempts
    assert all(d.signed() for d in attempts), [d.signature for d in attempts]  # the v1 header
    assert not any(d.signed("not-the-secret") for d in attempts)
    # What the receiver refuses: a wrong secret, a stale or a future timestamp, a body
    # changed after signing, and a signature moved to another timestamp.
    d = attempts[0]
    headers = {"X-Goldwire-Timestamp": d.timestamp,
               "X-Goldwire-Signature-V2": "sha256=" + hmac.new(
                   WEBHOOK_SECRET.encode(), d.timestamp.encode() + b"." + d.body,
                   hashlib.sha256).hexdigest()}
    sent = int(d.timestamp)
    assert verify(WEBHOOK_SECRET, headers, d.body, sent + 1)
    assert not verify("not-the-secret", headers, d.body, sent)
    assert not verify(WEBHOOK_SECRET, headers, d.body, sent + MAX_AGE + 1)
    assert not verify(WEBHOOK_SECRET, headers, d.body, sent - MAX_AGE - 1)
    assert not verify(WEBHOOK_SECRET, headers, d.body + b" ", sent)
    moved = {**headers, "X-Goldwire-Timestamp": str(sent + 1)}
    assert not verify(WEBHOOK_SECRET, moved, d.body, sent)
    changes = receiver.delivered()
    for exp in expected:  # each change once, with a timestamp
        (change,) = [c for c in changes if _matches(c, exp)]
        assert isinstance(change["ts"], int) and change["ts"] > 0
    # No order is promised: deliveries run concurrently and retries reorder them;
    # receivers order a user's changes by `ts`.


async def test_failing_receiver_is_retried_and_never_delays_the_stream(
        stack, receiver: Receiver, redis_server, key_prefix: str) -> None:
    presence, gateway = stack
    watched, busy = room(), room()
    observer = await joined(gateway, "observer", busy)

    receiver.status = 500  # the backend is down
    user = "ada-" + uuid.uuid4().hex[:6]
    ada = await joined(gateway, user, watched)
    await ada.close()
    expected = [
        {"kind": "user_online", "user": user},
        {"kind": "room_join", "user": user, "room": watched},
        {"kind": "room_leave", "user": user, "room": watched},
        {"kind": "user_offline", "user": user},
    ]

    # While deliveries fail and are being retried, joins still become diffs at once.
    others = []
    for i in range(5):
        other = f"bob{i}"
        others.append(await joined(gateway, other, busy))
        diff = await next_diff(observer)
        assert [m["user"]["id"] for m in diff["joins"]] == [other]
    # Every one of ada's changes was tried and retried.
    await receiver.wait_for(expected, attempts=2, status=500)
    assert not any(_matches(c, {"user": user}) for c in receiver.delivered())
    # The retries wait as arq jobs whose ids hold the key prefix (arq's own `arq:job:`
    # prefix is fixed): another deployment on this Redis never sees them as its own.
    redis = Redis.from_url(jobs_url(redis_server.url))  # arq's keys
    try:
        waiting = [k.decode() async for k in redis.scan_iter(
            match=f"arq:job:{key_prefix}:presence:webhook:*", count=1000)]
    finally:
        await redis.aclose()
    assert waiting

    receiver.status = 200  # the backend is back: arq's retries get everything through
    await receiver.wait_for(expected)
    assert all(d.signed() and d.verified for d in receiver.attempts())
    # Each retry is signed when it is sent, so the freshness window never refuses a
    # change only because it waited in arq's queue.
    stamps = {d.timestamp for d in receiver.attempts() if _matches(d.change, {"user": user})}
    assert len(stamps) >= 2, stamps
    accepted = [c for c in receiver.delivered() if c["user"] == user]
    assert len(accepted) == len(expected), accepted  # delivered once each, none lost
    assert "goldwire_presence_webhook_failures_total 0" not in presence.metrics()

    for client in [observer, *others]:
        await client.close()


@pytest.mark.parametrize("secret", ["", "   "])
async def test_a_webhook_without_a_secret_refuses_to_start(redis_server, key_prefix: str,
                                                            secret: str) -> None:
    """Unsigned deliveries could be forged by anyone: the process will not start, and
    says why in one line."""
    env = {**os.environ, "REDIS_URL": redis_server.url, "GOLDWIRE_KEY_PREFIX": key_prefix,
           "PRESENCE_PORT": str(free_port()), "LOG_LEVEL": "warning",
           "PRESENCE_WEBHOOK_URL": "http://127.0.0.1:9/hooks", "PRESENCE_WEBHOOK_SECRET": secret}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "goldwire.cli", "presence", env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2, (proc.returncode, err)
    assert err.decode().strip().splitlines() == [
        "goldwire presence: PRESENCE_WEBHOOK_URL is set but PRESENCE_WEBHOOK_SECRET is empty"]
