"""goldwire.client against a real gateway process on a real Redis: no mocks.

Every publisher test runs once per backend (HTTP API and direct Redis), the
same contract for both. "Not delivered twice" is checked without sleeping:
after the repeat, a marker is published on the same channel, and the marker
must be the very next frame (a channel keeps its order). The client's own
deduplication is checked to have dropped nothing, so a duplicate sent by the
gateway could not hide behind it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from goldwire.cli.procutil import free_port
from goldwire.cli.tokens import mint_token
from goldwire.client import (
    CommandFailed,
    Disconnected,
    ExponentialBackoff,
    GoldwireClient,
    HttpPublisher,
    Publisher,
    PublishRejected,
    PublishUnavailable,
    RedisPublisher,
    ServerMessage,
)
from goldwire.protocol.codes import CloseCode, Reconnect
from goldwire.protocol.keys import Keys
from goldwire.protocol.offsets import parse_offset

SECRET = "client-test-secret-0123456789abcdef0123456789"
API_KEY = "client-test-api-key"
FAST = ExponentialBackoff(base=0.01, cap=0.05)
BACKENDS = ["http", "redis"]


# --- the gateway process ------------------------------------------------------------------


@dataclass
class Gateway:
    http_url: str
    ws_url: str
    port: int
    redis_url: str
    key_prefix: str

    def token(self, user: str, rooms: tuple[str, ...] = ("*",),
              publish: tuple[str, ...] = ("*",), name: str | None = None) -> str:
        return mint_token(SECRET, user, name=name, rooms=rooms, publish=publish)

    def publisher(self, backend: str, **options: Any) -> Publisher:
        if backend == "http":
            return HttpPublisher(self.http_url, API_KEY, backoff=FAST, **options)
        return RedisPublisher(self.redis_url, key_prefix=self.key_prefix, backoff=FAST, **options)

    async def client(self, user: str = "u1", join: list[Any] | None = None,
                     **token: Any) -> GoldwireClient:
        """A connected client; `join` are the rooms to join, `token` the token's claims."""
        return await GoldwireClient.connect(self.ws_url, self.token(user, **token), rooms=join,
                                            reply_timeout=5.0)


def _start_gateway(redis_url: str, key_prefix: str, log_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "GOLDWIRE_KEY_PREFIX": key_prefix,
        "JWT_SECRET": SECRET,
        "API_KEYS": API_KEY,
        "GATEWAY_PORT": str(port),
        "LOG_LEVEL": "warning",
        "DRAIN_TIMEOUT": "1",
    }
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "goldwire.cli", "gateway"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    # Already a poll, not a guessed sleep; kept rather than `until` because this sync fixture
    # helper must hand back a gateway that exited (its port was taken) so the fixture retries.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc, port
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    return proc, port


@pytest.fixture
def gateway(redis_server: Any, key_prefix: str, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway subprocess on a free port, with this test's key prefix."""
    log_path = tmp_path / "gateway.log"
    for _ in range(3):  # the free port may be taken before the gateway binds it
        proc, port = _start_gateway(redis_server.url, key_prefix, log_path)
        if proc.poll() is None:
            break
    else:
        pytest.fail("gateway did not start:\n" + log_path.read_text()[-3000:])
    try:
        yield Gateway(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws", port,
                      redis_server.url, key_prefix)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(params=BACKENDS)
async def publisher(request: pytest.FixtureRequest, gateway: Gateway) -> AsyncIterator[Publisher]:
    pub = gateway.publisher(request.param)
    try:
        yield pub
    finally:
        await pub.aclose()


# --- helpers ------------------------------------------------------------------------------


async def take(client: GoldwireClient, n: int, timeout: float = 5.0) -> list[ServerMessage]:
    return [await client.next_message(timeout) for _ in range(n)]


async def room_messages(client: GoldwireClient, n: int) -> list[ServerMessage]:
    """The next `n` frames that carry an offset (presence and room events skipped)."""
    out: list[ServerMessage] = []
    while len(out) < n:
        msg = await client.next_message(5.0)
        if msg.offset is not None:
            out.append(msg)
    return out


async def next_of_type(client: GoldwireClient, *types: str) -> ServerMessage:
    while True:
        msg = await client.next_message(5.0)
        if msg.type in types:
            return msg


def increasing(offsets: list[str]) -> bool:
    parsed = [parse_offset(o) for o in offsets]
    return all(a < b for a, b in itertools.pairwise(parsed))


# --- room publishes ---------------------------------------------------------------------------


async def test_room_publish_reaches_a_client_with_increasing_offsets(
    publisher: Publisher, gateway: Gateway
) -> None:
    async with await gateway.client(join=["doc:1"]) as client:
        offsets = [await publisher.publish_room("doc:1", "document_update", {"n": i})
                   for i in range(3)]
        got = await room_messages(client, 3)
    assert [m.offset for m in got] == offsets
    assert increasing(offsets)
    for i, msg in enumerate(got):
        assert list(msg.raw) == ["type", "room", "offset", "ts", "data"]
        assert (msg.type, msg.room, msg.data) == ("document_update", "doc:1", {"n": i})
        assert msg.ts == parse_offset(msg.offset)[0]
    assert client.last_offsets == {"doc:1": offsets[-1]}


async def test_both_backends_send_identical_frames_into_one_offset_sequence(
    gateway: Gateway,
) -> None:
    http, direct = gateway.publisher("http"), gateway.publisher("redis")
    sender = {"id": "svc", "name": "Indexer"}
    try:
        async with await gateway.client(join=["doc:2"]) as client:
            offsets = []
            for pub in (http, direct, http, direct):
                offsets.append(await pub.publish_room("doc:2", "user_message", {"x": [1, "é"]},
                                                      sender=sender))
            got = await room_messages(client, 4)
    finally:
        await http.aclose()
        await direct.aclose()
    assert increasing(offsets) and [m.offset for m in got] == offsets
    shapes = [{k: v for k, v in m.raw.items() if k not in ("offset", "ts")} for m in got]
    assert all(shape == shapes[0] for shape in shapes)
    assert all(list(m.raw) == ["type", "room", "offset", "ts", "from", "data"] for m in got)
    assert got[0].sender == sender


async def test_a_repeated_idempotency_key_is_delivered_once_with_the_first_offset(
    publisher: Publisher, gateway: Gateway
) -> None:
    async with await gateway.client(join=["doc:3"]) as client:
        first = await publisher.publish_room("doc:3", "document_update", {"v": 1},
                                             idempotency_key="save-1")
        again = await publisher.publish_room("doc:3", "document_update", {"v": 1},
                                             idempotency_key="save-1")
        marker = await publisher.publish_room("doc:3", "document_update", {"v": "marker"})
        got = await room_messages(client, 2)
    assert again == first
    assert [m.offset for m in got] == [first, marker]
    assert client.duplicates_dropped == 0


async def test_a_repeated_key_to_a_user_is_delivered_once(
    publisher: Publisher, gateway: Gateway
) -> None:
    async with await gateway.client("u1") as client:
        first = await publisher.send_to_user("u1", {"n": 1}, idempotency_key="note-1")
        again = await publisher.send_to_user("u1", {"n": 1}, idempotency_key="note-1")
        await publisher.send_to_user("u1", {"n": "marker"})
        got = [await next_of_type(client, "notification") for _ in range(2)]
    assert (first.delivered, first.duplicate) == (1, False)
    assert (again.delivered, again.duplicate) == (1, True)
    assert [m.data for m in got] == [{"n": 1}, {"n": "marker"}]


async def test_an_idempotency_key_is_shared_by_both_backends(gateway: Gateway) -> None:
    http, direct = gateway.publisher("http"), gateway.publisher("redis")
    try:
        first = await http.publish_room("doc:4", "user_message", {}, idempotency_key="k")
        assert await direct.publish_room("doc:4", "user_message", {}, idempotency_key="k") == first
        for a, b, key in ((direct, http, "k2"), (http, direct, "k3")):
            sent = await a.send_to_user("u9", {}, idempotency_key=key)
            repeat = await b.send_to_user("u9", {}, idempotency_key=key)
            assert repeat.duplicate and repeat.delivered == sent.delivered == 0
    finally:
        await http.aclose()
        await direct.aclose()


# --- a response lost after the server acted ---------------------------------------------------


class ResponseDroppingProxy:
    """A TCP proxy that, once, forwards a request containing `marker` and then cuts the
    client's connection instead of relaying the answer: the server has acted, the
    client sees a network error and must retry."""

    def __init__(self, upstream_port: int, marker: bytes) -> None:
        self.upstream_port = upstream_port
        self.marker = marker
        self.armed = True
        self.dropped = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        cut = False

        async def upstream() -> None:
            nonlocal cut
            while data := await reader.read(65536):
                if self.armed and self.marker in data:
                    self.armed, cut = False, True
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if cut:
                    self.dropped += 1
                    return
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            writer.transport.abort()
            up_writer.transport.abort()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_publish_whose_response_was_lost_is_retried_and_delivered_once(
    backend: str, gateway: Gateway
) -> None:
    upstream, marker = ((gateway.port, b"POST /v1/publish") if backend == "http"
                        else (int(gateway.redis_url.rsplit(":", 1)[1].split("/")[0]), b"EVALSHA"))
    proxy = ResponseDroppingProxy(upstream, marker)
    port = await proxy.start()
    direct = gateway.publisher("redis")
    if backend == "http":
        flaky: Publisher = HttpPublisher(f"http://127.0.0.1:{port}", API_KEY, backoff=FAST)
    else:
        flaky = RedisPublisher(f"redis://127.0.0.1:{port}/0", key_prefix=gateway.key_prefix,
                               backoff=FAST)
    try:
        await direct.publish_room("doc:warm", "user_message", {})  # load the script into Redis
        async with await gateway.client(join=["doc:5"]) as client:
            offset = await flaky.publish_room("doc:5", "document_update", {"v": "once"})
            marker_offset = await direct.publish_room("doc:5", "document_update", {"v": "m"})
            got = await room_messages(client, 2)
    finally:
        await flaky.aclose()
        await direct.aclose()
        await proxy.close()
    assert proxy.dropped == 1, "the proxy never cut a response: nothing was retried"
    assert [(m.offset, m.data) for m in got] == [(offset, {"v": "once"}),
                                                (marker_offset, {"v": "m"})]
    assert client.duplicates_dropped == 0


# --- the convenience methods and batches --------------------------------------------------------


async def test_convenience_methods(publisher: Publisher, gateway: Gateway) -> None:
    async with await gateway.client("u1", join=["doc:7"]) as client:
        await publisher.document_updated(7, {"title": "Lease"}, by={"id": "u2", "name": "Bo"})
        await publisher.comment_added(7, "c1", "u3", "Looks good")
        result = await publisher.user_notified("u1", "Signed", "The lease was signed",
                                               link="/doc/7")
        update, comment = await room_messages(client, 2)
        note = await next_of_type(client, "notification")
    assert (update.type, update.room, update.sender) == ("document_update", "doc:7",
                                                         {"id": "u2", "name": "Bo"})
    assert update.data == {"document_id": "7", "changes": {"title": "Lease"}}
    assert (comment.type, comment.room, comment.sender) == ("user_message", "doc:7", {"id": "u3"})
    assert comment.data == {"kind": "comment", "document_id": "7", "comment_id": "c1",
                            "text": "Looks good"}
    assert result.delivered == 1
    assert list(note.raw) == ["type", "id", "ts", "unread", "data"]  # kept in the inbox
    assert note.data == {"title": "Signed", "body": "The lease was signed", "link": "/doc/7"}


async def test_broadcast_reaches_the_tenant(publisher: Publisher, gateway: Gateway) -> None:
    async with await gateway.client("u1") as client:
        result = await publisher.broadcast({"text": "maintenance at 22:00"})
        msg = await next_of_type(client, "system_message")
    assert result.delivered == 1  # one gateway
    assert msg.data == {"text": "maintenance at 22:00"}


async def test_publish_batch(publisher: Publisher, gateway: Gateway) -> None:
    async with await gateway.client("u1", join=["doc:8"]) as client:
        results = await publisher.publish_batch([
            {"room": "doc:8", "type": "document_update", "data": {"i": 1}},
            {"user": "u1", "type": "notification", "data": {"i": 2}},
            {"room": "doc:8", "type": "document_update", "data": {"i": 3},
             "idempotency_key": "b3"},
        ])
        again = await publisher.publish_batch([
            {"room": "doc:8", "type": "document_update", "data": {"i": 3},
             "idempotency_key": "b3"},
        ])
        got = await room_messages(client, 2)
    assert increasing([results[0].offset, results[2].offset])  # type: ignore[list-item]
    assert results[1].delivered == 1
    assert again[0].offset == results[2].offset and again[0].duplicate
    assert [m.data for m in got] == [{"i": 1}, {"i": 3}]


async def test_refusals_raise_publish_rejected(publisher: Publisher, gateway: Gateway) -> None:
    with pytest.raises(PublishRejected) as bad_room:
        await publisher.publish_room("no spaces allowed", "user_message", {})
    assert bad_room.value.status == 422
    with pytest.raises(PublishRejected):
        await publisher.publish_room("doc:1", "presence_update", {})
    with pytest.raises(PublishRejected) as unauthorized:
        async with HttpPublisher(gateway.http_url, "wrong-key", backoff=FAST) as wrong:
            await wrong.publish_room("doc:1", "user_message", {})
    assert unauthorized.value.status == 401


async def test_a_message_over_max_publish_bytes_is_refused_by_both_backends(
    publisher: Publisher, gateway: Gateway
) -> None:
    """Both backends refuse it the same way (413 `too_large`), before anything is stored:
    the members are not cut off and the next message is the room's first offset."""
    big = {"text": "x" * 70_000}  # over the gateway's default 65,536
    async with await gateway.client("u1", join=["doc:big"]) as client:
        attempts = [
            lambda: publisher.publish_room("doc:big", "user_message", big),
            lambda: publisher.send_to_user("u1", big, type="user_message"),
            lambda: publisher.publish_batch([  # refused whole: the small item is not sent
                {"room": "doc:big", "type": "user_message", "data": {"n": 0}},
                {"room": "doc:big", "type": "user_message", "data": big},
            ]),
        ]
        for attempt in attempts:
            with pytest.raises(PublishRejected) as refused:
                await attempt()
            assert refused.value.status == 413, refused.value
            detail = refused.value.detail
            assert isinstance(detail, dict) and detail.get("code") == "too_large"
        fine = await publisher.publish_room("doc:big", "user_message", {"n": 1})
        got = await room_messages(client, 1)
        assert [m.data for m in got] == [{"n": 1}] and got[0].offset == fine
        assert (await client.ping()) >= 0  # still connected: nothing cut it off


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_unreachable_backend_raises_publish_unavailable_after_the_retries(
    backend: str,
) -> None:
    port = free_port()  # nothing listens there
    pub: Publisher = (HttpPublisher(f"http://127.0.0.1:{port}", API_KEY, retries=2, backoff=FAST)
                      if backend == "http" else
                      RedisPublisher(f"redis://127.0.0.1:{port}/0", retries=2, backoff=FAST))
    async with pub:
        with pytest.raises(PublishUnavailable) as failed:
            await pub.publish_room("doc:1", "user_message", {})
    assert failed.value.attempts == 3


# --- the socket client ---------------------------------------------------------------------------


async def test_reconnect_recovers_what_was_missed_in_order_without_duplicates(
    publisher: Publisher, gateway: Gateway
) -> None:
    async with await gateway.client(join=["doc:9"]) as client:
        seen = [await publisher.publish_room("doc:9", "document_update", {"n": 0})]
        await room_messages(client, 1)
        # Published and received, but not read yet: must survive the reconnect.
        seen.append(await publisher.publish_room("doc:9", "document_update", {"n": 1}))
        await client.ping()  # the reader has it queued once the pong is back
        await client.close()
        assert client.close_code == 1000
        missed = [await publisher.publish_room("doc:9", "document_update", {"n": n})
                  for n in range(2, 6)]
        welcome = await client.reconnect()
        live = await publisher.publish_room("doc:9", "document_update", {"n": 6})
        got = await room_messages(client, 6)
    assert welcome["rooms"] == [{"room": "doc:9", "offset": missed[-1], "recovered": True}]
    assert [m.offset for m in got] == [seen[1], *missed, live]
    assert [m.data["n"] for m in got] == [1, 2, 3, 4, 5, 6]
    assert client.duplicates_dropped == 0


async def test_a_server_close_is_reported_and_recovered_from(gateway: Gateway) -> None:
    pub = gateway.publisher("redis")
    control = aioredis.Redis.from_url(gateway.redis_url)
    try:
        await pub.publish_room("doc:11", "user_message", {"n": 0})
        async with await gateway.client(join=["doc:10", ("doc:11", None)]) as client:
            first = await pub.publish_room("doc:10", "user_message", {"n": 1})
            await room_messages(client, 1)
            node = Keys(gateway.key_prefix).node_channel(client.welcome["node"])
            await control.publish(node, b'{"kind": "close", "conn": "%s", "code": 4012}'
                                  % client.welcome["conn_id"].encode())
            with pytest.raises(Disconnected) as ended:
                while True:
                    await client.next_message(5.0)
            assert ended.value.code == client.close_code == CloseCode.DRAINING
            assert ended.value.info is not None
            assert ended.value.info.reconnect is Reconnect.AT_ONCE
            missed = await pub.publish_room("doc:10", "user_message", {"n": 2})
            other = await pub.publish_room("doc:11", "user_message", {"n": 3})
            welcome = await client.reconnect()
            got = await room_messages(client, 2)
    finally:
        await pub.aclose()
        await control.aclose()
    assert {r["room"]: r.get("recovered") for r in welcome["rooms"]} == {"doc:10": True,
                                                                        "doc:11": True}
    assert sorted(m.offset for m in got) == sorted([missed, other])
    assert parse_offset(first) < parse_offset(missed)


async def test_a_room_joined_while_empty_is_honestly_not_recovered(gateway: Gateway) -> None:
    """Offset 0-0 cannot prove that Redis kept everything since the join (a flush in
    between would look the same), so the answer is `recovered: false` and nothing is
    replayed: the client reloads over HTTP. docs/architecture.md names this limit."""
    pub = gateway.publisher("redis")
    try:
        async with await gateway.client(join=["doc:new"]) as client:
            assert client.last_offsets == {"doc:new": "0-0"}
            await client.close()
            await pub.publish_room("doc:new", "document_update", {"n": 1})
            welcome = await client.reconnect()
            assert welcome["rooms"][0].get("recovered") is False
            marker = await pub.publish_room("doc:new", "document_update", {"n": 2})
            (msg,) = await room_messages(client, 1)  # live again, no replay before it
            assert msg.offset == marker
    finally:
        await pub.aclose()


async def test_commands_reply_and_errors_raise(gateway: Gateway) -> None:
    async with await gateway.client("u1", rooms=("doc:*",), publish=("doc:*",)) as alice, \
            await gateway.client("u2", rooms=("doc:*",), publish=()) as bob:
        assert (await alice.join("doc:12"))["offset"] == "0-0"
        assert (await bob.join("doc:12"))["room"] == "doc:12"
        offset = await alice.publish("doc:12", "user_message", {"text": "hi"})
        for c in (alice, bob):
            (msg,) = await room_messages(c, 1)
            assert (msg.offset, msg.sender, msg.data) == (offset, {"id": "u1", "name": None},
                                                          {"text": "hi"})
        assert await alice.send("u2", {"text": "psst"}) == 1
        direct = await next_of_type(bob, "user_message")
        assert (direct.sender, direct.data) == ({"id": "u1", "name": None}, {"text": "psst"})
        assert (await alice.status("away"))["status"] == "away"
        assert await alice.ping() >= 0
        with pytest.raises(CommandFailed) as forbidden:
            await alice.join("secret:1")
        assert forbidden.value.code == "forbidden"
        with pytest.raises(CommandFailed) as cannot_publish:
            await bob.publish("doc:12", "user_message", {})
        assert cannot_publish.value.code == "forbidden"
        assert (await alice.leave("doc:12")) == {"room": "doc:12"}
        assert alice.last_offsets == {}


async def test_a_bad_token_is_refused_with_4001(gateway: Gateway) -> None:
    with pytest.raises(Disconnected) as refused:
        await GoldwireClient.connect(gateway.ws_url, "not-a-jwt")
    assert refused.value.code == CloseCode.UNAUTHORIZED
