"""How a gateway turns presence's announcements into a member's state, with no presence
process running: the test plays presence's part on a real Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from goldwire.protocol.channels import format_close, format_room_message
from goldwire.protocol.keys import Keys
from tests.support import Client, Gateway, token


@pytest.fixture
def gateway(redis_server, key_prefix):
    gw = Gateway(redis_server.url, key_prefix).start()
    yield gw
    gw.terminate()


@pytest.fixture
async def redis(redis_server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def view(user: str, status: str = "online") -> str:
    return json.dumps({"user": {"id": user, "name": None}, "status": status,
                       "connections": 1, "meta": {}}, separators=(",", ":"))


async def test_an_announced_state_is_read_with_pending_changes_taken_back(
        gateway, redis, key_prefix) -> None:
    keys = Keys(key_prefix)
    ada = await Client.open(gateway.url, token("ada"), rooms=[{"room": "doc:s"}])
    conn, node = ada.connected["data"]["conn_id"], ada.connected["data"]["node"]
    # The room as presence stores it: version 7 was published with ada and bob (busy);
    # since then bob went online and ghost came, neither published yet.
    await redis.hset(keys.presence_members("default", "doc:s"),
                     mapping={"ada": view("ada"), "bob": view("bob"), "ghost": view("ghost")})
    await redis.hset(keys.presence_pending_diff("default", "doc:s"),
                     mapping={"bob": view("bob", "busy"), "ghost": ""})
    await redis.set(keys.presence_version("default", "doc:s"), 7)
    await redis.publish(keys.node_channel(node), f"P doc:s\n7\n{conn} {node}.404")
    state = (await ada.recv_type("presence_update"))["data"]
    assert state["kind"] == "state" and state["version"] == 7
    members = {m["user"]["id"]: m["status"] for m in state["members"]}
    assert members == {"ada": "online", "bob": "busy"}  # as published, no ghost
    await ada.close()


async def test_unknown_channel_messages_are_dropped_and_the_channels_keep_working(
        gateway, redis, key_prefix) -> None:
    """Garbage on a node or room channel (or the retired `S` state form) is logged and
    dropped; the next real message on the same channel still arrives."""
    keys = Keys(key_prefix)
    ada = await Client.open(gateway.url, token("ada"), rooms=[{"room": "doc:t"}])
    conn, node = ada.connected["data"]["conn_id"], ada.connected["data"]["node"]
    frame = ('{"type":"presence_update","room":"doc:t","data":{"kind":"state","version":3,'
             '"members":[' + view("ada") + "]}}")
    for junk in (f"S {conn}\ndoc:t\n3\n{frame}", "P doc:t\nseven\n" + conn, "{]", "[]"):
        await redis.publish(keys.node_channel(node), junk)
    for junk in ("no-offset-here", "- x {}", "12-x {}"):
        await redis.publish(keys.room_channel("default", "doc:t"), junk)
    message = b'{"type":"user_message","room":"doc:t","data":{"n":1}}'
    await redis.publish(keys.room_channel("default", "doc:t"),
                        format_room_message("9999999999999-0", message))
    assert (await ada.recv_type("user_message"))["data"] == {"n": 1}
    await redis.publish(keys.node_channel(node), format_close(conn, 4010, "revoked"))
    assert await ada.closed_with() == 4010
