"""How a gateway turns presence's announcements into a member's state, with no presence
process running: the test plays presence's part on a real Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

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


async def test_a_state_built_by_an_older_presence_is_still_delivered(
        gateway, redis, key_prefix) -> None:
    ada = await Client.open(gateway.url, token("ada"), rooms=[{"room": "doc:t"}])
    conn, node = ada.connected["data"]["conn_id"], ada.connected["data"]["node"]
    frame = ('{"type":"presence_update","room":"doc:t","data":{"kind":"state","version":3,'
             '"members":[' + view("ada") + "]}}")
    await redis.publish(Keys(key_prefix).node_channel(node), f"S {conn}\ndoc:t\n3\n{frame}")
    state = (await ada.recv_type("presence_update"))["data"]
    assert state["version"] == 3 and [m["user"]["id"] for m in state["members"]] == ["ada"]
    await ada.close()
