"""Token lifetime on a live socket: `expires_at` in the connect reply, close 4001 when the
token runs out, and the `refresh` op that keeps a connection alive with a new token."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from goldwire.client import Disconnected, GoldwireClient
from goldwire.protocol.messages import ConnectReply
from tests.support import SECRET, Client, Gateway, token

pytestmark = pytest.mark.asyncio


@pytest.fixture
def gateway(redis_server, key_prefix):
    gw = Gateway(redis_server.url, key_prefix, jwt_leeway=0).start()
    yield gw
    gw.terminate()


def _exp_ms(tok: str) -> int:
    return int(jwt.decode(tok, SECRET, algorithms=["HS256"], options={"verify_aud": False})
               ["exp"]) * 1000


async def test_connect_reply_says_when_the_token_expires(gateway) -> None:
    tok = token("ada", ttl=600)
    client = await Client.open(gateway.url)
    reply = await client.ok("connect", token=tok)
    assert reply["expires_at"] == _exp_ms(tok)
    ConnectReply.model_validate(reply)  # what the gateway sends is what the contract says
    await client.close()


async def test_an_expired_token_closes_the_socket_with_4001(gateway) -> None:
    client = await Client.open(gateway.url, token("ada", ttl=2))
    assert client.connected["type"] == "system_message"
    # The socket is closed by the server once exp passes: nothing the client sends is needed.
    assert await client.closed_with(timeout=8) == 4001
    assert client.ws.close_reason == "token expired"


async def test_refresh_keeps_the_connection_past_the_old_expiry(gateway) -> None:
    short = token("ada", ttl=2)
    client = await Client.open(gateway.url, short, rooms=[{"room": "doc:r"}])
    longer = token("ada", ttl=3600)
    refreshed = await client.ok("refresh", token=longer)
    assert refreshed == {"expires_at": _exp_ms(longer)}
    deadline = _exp_ms(short) / 1000 + 1.5
    while time.time() < deadline:  # outlive the first token, using the socket meanwhile
        assert (await client.ok("ping")) == {"pong": True}
        await client.ws.ping()
        await asyncio.sleep(0.2)  # stays: paces the pings while the old token runs out
    sent = await client.ok("publish", room="doc:r", type="user_message", data={"n": 1})
    assert (await client.recv_type("user_message"))["offset"] == sent["offset"]
    assert "goldwire_gateway_tokens_refreshed_total 1" in gateway.metrics()
    await client.close()


async def test_refresh_with_another_users_token_is_forbidden_and_closes(gateway) -> None:
    client = await Client.open(gateway.url, token("ada"))
    answer = await client.command("refresh", token=token("mallory"))
    assert answer["type"] == "error" and answer["data"]["code"] == "forbidden"
    assert await client.closed_with() == 4001


async def test_refresh_into_another_tenant_is_forbidden(gateway) -> None:
    client = await Client.open(gateway.url, token("ada", tenant="firm-a"))
    answer = await client.command("refresh", token=token("ada", tenant="firm-b"))
    assert answer["data"]["code"] == "forbidden"
    assert await client.closed_with() == 4001


async def test_a_refresh_token_that_does_not_verify_leaves_the_old_one_in_force(gateway) -> None:
    client = await Client.open(gateway.url, token("ada"))
    now = int(time.time())
    forged = jwt.encode({"sub": "ada", "exp": now + 60}, "another-secret-" + "x" * 32,
                        algorithm="HS256")
    expired = jwt.encode({"sub": "ada", "exp": now - 60}, SECRET, algorithm="HS256")
    for candidate in (forged, expired, "not-a-jwt"):
        answer = await client.command("refresh", token=candidate)
        assert answer["type"] == "error" and answer["data"]["code"] == "unauthorized", answer
    assert (await client.ok("ping")) == {"pong": True}  # still connected on the old token
    missing = await client.command("refresh")
    assert missing["data"]["code"] == "bad_request" and "token" in missing["data"]["message"]
    await client.close()


async def test_the_python_client_refreshes_by_itself_through_a_token_callback(gateway) -> None:
    """Tokens of 3 s, the socket kept for 8 s: only the callback's refreshes keep it open."""
    minted: list[str] = []

    async def next_token() -> str:
        minted.append(token("ada", ttl=3))
        return minted[-1]

    client = await GoldwireClient.connect(gateway.url, next_token, rooms=["doc:auto"])
    first_expiry = client.expires_at
    assert first_expiry is not None and abs(first_expiry * 1000 - _exp_ms(minted[0])) < 1
    deadline = time.time() + 8
    while time.time() < deadline:
        await client.ping()
        await asyncio.sleep(0.25)  # stays: keeping the socket 8 s is the point; paces the pings
    assert client.refreshes >= 2 and len(minted) == client.refreshes + 1
    assert client.expires_at is not None and client.expires_at > first_expiry + 4
    offset = await client.publish("doc:auto", "user_message", {"n": 1})
    assert (await client.next_message(timeout=5)).offset == offset
    await client.close()
    assert client.close_code == 1000


async def test_a_client_with_a_plain_token_is_closed_4001_at_expiry(gateway) -> None:
    """The control for the test above: without a callback nothing refreshes."""
    client = await GoldwireClient.connect(gateway.url, token("ada", ttl=2))
    with pytest.raises(Disconnected) as ended:
        await client.next_message(timeout=8)
    assert ended.value.code == 4001 and client.refreshes == 0


async def test_a_failing_token_callback_is_retried_while_the_token_lasts(gateway) -> None:
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first refresh: the token service is down
            raise RuntimeError("token service unavailable")
        return token("ada", ttl=4)

    client = await GoldwireClient.connect(gateway.url, flaky, refresh_margin=3)
    deadline = time.time() + 6
    while time.time() < deadline:
        await client.ping()
        await asyncio.sleep(0.25)  # stays: outliving the failed refresh is the point
    assert calls >= 3 and client.refreshes >= 1
    await client.close()
