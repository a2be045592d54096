"""The `send` claim: who a token may direct-message. Real gateway, real sockets."""

from __future__ import annotations

import io

import jwt
import pytest

from goldwire.cli.main import main
from tests.support import SECRET, Client, Gateway, token

pytestmark = pytest.mark.asyncio


@pytest.fixture
def gateway(redis_server, key_prefix):
    gw = Gateway(redis_server.url, key_prefix).start()
    yield gw
    gw.terminate()


async def test_a_send_claim_restricts_targets_and_a_refusal_keeps_the_socket(gateway) -> None:
    clerk = await Client.open(gateway.url, token("clerk-1"))
    judge = await Client.open(gateway.url, token("judge-1"))
    sender = await Client.open(gateway.url, token("ada", send=["clerk-*", "bob"]))
    assert await sender.ok("send", user="clerk-1", data={"n": 1}) == {"delivered": 1}
    assert (await clerk.recv_type("user_message"))["data"] == {"n": 1}
    refused = await sender.command("send", user="judge-1", data={"n": 2})
    assert refused["type"] == "error" and refused["data"]["code"] == "forbidden"
    assert "judge-1" in refused["data"]["message"]
    # `*` is the only wildcard: a `?` or `[` in a user id is that character.
    assert (await sender.command("send", user="clerk", data={}))["type"] == "error"
    # The socket stays open and the refused message went nowhere.
    assert await sender.ok("ping") == {"pong": True}
    assert await judge.ok("ping") == {"pong": True}
    assert judge._backlog == []
    for c in (clerk, judge, sender):
        await c.close()


async def test_no_claim_is_anyone_in_the_tenant_and_an_empty_one_is_no_one(gateway) -> None:
    bob = await Client.open(gateway.url, token("bob"))
    anyone = await Client.open(gateway.url, token("ada"))  # support.token sets no `send`
    assert await anyone.ok("send", user="bob", data={}) == {"delivered": 1}
    no_one = await Client.open(gateway.url, token("eve", send=[]))
    reply = await no_one.command("send", user="bob", data={})
    assert reply["data"]["code"] == "forbidden"
    # Still same-tenant only, with or without a claim: globex's bob is another user.
    other = await Client.open(gateway.url, token("mallory", tenant="globex", send=["*"]))
    assert await other.ok("send", user="bob", data={}) == {"delivered": 0}
    for c in (bob, anyone, no_one, other):
        await c.close()


async def test_a_refresh_brings_the_new_tokens_send_claim(gateway) -> None:
    bob = await Client.open(gateway.url, token("bob"))
    ada = await Client.open(gateway.url, token("ada", send=["carol"]))
    assert (await ada.command("send", user="bob", data={}))["data"]["code"] == "forbidden"
    await ada.ok("refresh", token=token("ada", send=["bob"]))
    assert await ada.ok("send", user="bob", data={}) == {"delivered": 1}
    await bob.close()
    await ada.close()


async def test_goldwire_token_send_option() -> None:
    def claims(*extra: str) -> dict:
        out = io.StringIO()
        assert main(["token", "--user", "u", "--secret", SECRET, *extra], environ={},
                    out=out) == 0
        return jwt.decode(out.getvalue().strip(), SECRET, algorithms=["HS256"])

    assert claims("--send", "clerk-*, bob")["send"] == ["clerk-*", "bob"]
    assert claims("--send", "")["send"] == []
    assert "send" not in claims()
