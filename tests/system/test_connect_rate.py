"""CONNECT_RATE_PER_IP over every gateway, and X-Forwarded-For only from TRUSTED_PROXIES.

Clients come from distinct loopback addresses (127.0.0.1 is a client, 127.0.0.2 plays a
trusted proxy), through real sockets, to two real gateway processes on one Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import websockets
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from goldwire.gateway.settings import GatewaySettings
from goldwire.protocol.keys import Keys
from tests.support import Client, Gateway, token

pytestmark = pytest.mark.asyncio

PROXY = "127.0.0.2"
BURST = 3


@pytest.fixture
def pair(redis_server, key_prefix) -> Iterator[tuple[Gateway, Gateway]]:
    gws = [Gateway(redis_server.url, key_prefix, connect_rate_per_ip=0.2,
                   connect_rate_burst=BURST, trusted_proxies=f"{PROXY}, 10.0.0.0/8").start()
           for _ in range(2)]
    yield gws[0], gws[1]
    for gw in gws:
        gw.terminate()


async def attempt(url: str, xff: str | None = None, source: str = "127.0.0.1") -> int:
    """One upgrade: 101, or the HTTP status it was refused with (429 checks Retry-After)."""
    headers = {"X-Forwarded-For": xff} if xff else {}
    try:
        ws = await websockets.connect(url, additional_headers=headers, local_addr=(source, 0))
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status == 429:
            assert int(exc.response.headers["Retry-After"]) >= 1
            assert b"CONNECT_RATE_PER_IP" in exc.response.body
        return status
    await ws.close()
    return 101


async def test_a_flood_from_one_ip_is_refused_429_on_every_gateway(pair) -> None:
    gw1, gw2 = pair
    # A spoofed X-Forwarded-For from an untrusted peer is ignored: every attempt is
    # 127.0.0.1's, whatever it claims, and both gateways share its bucket.
    codes = [await attempt((gw1, gw2)[i % 2].url, xff=f"198.51.100.{i}") for i in range(10)]
    assert codes[:BURST] == [101] * BURST
    assert codes[BURST + 1:] == [429] * (10 - BURST - 1), codes
    assert "goldwire_gateway_connects_rate_limited_total 0" not in gw1.metrics()
    # Meanwhile a client behind the trusted proxy is its own address, and not limited.
    for _ in range(BURST):
        assert await attempt(gw2.url, xff="203.0.113.7", source=PROXY) == 101
    # ... until it floods too; then others behind the same proxy still get in.
    assert await attempt(gw1.url, xff="203.0.113.7", source=PROXY) == 429
    assert await attempt(gw1.url, xff="203.0.113.8", source=PROXY) == 101


async def test_the_rightmost_untrusted_address_counts_not_what_the_client_wrote(
        pair, redis_server, key_prefix) -> None:
    gw1, _ = pair
    # Through the proxy, a client prepends made-up addresses to escape its bucket: the
    # proxy appended the real one on the right, and that is the one counted.
    codes = [await attempt(gw1.url, xff=f"192.0.2.{i}, 203.0.113.9", source=PROXY)
             for i in range(BURST + 2)]
    assert codes[:BURST] == [101] * BURST and codes[-1] == 429, codes
    # Trusted hops on the right are skipped (10.0.0.0/8 is trusted too).
    assert await attempt(gw1.url, xff="203.0.113.9, 10.1.2.3", source=PROXY) == 429
    redis = Redis.from_url(redis_server.url)
    keys = Keys(key_prefix)
    assert await redis.exists(keys.connect_rate("203.0.113.9"))
    assert not await redis.exists(keys.connect_rate("192.0.2.0"))
    assert not await redis.exists(keys.connect_rate(PROXY))
    await redis.aclose()


async def test_an_accepted_upgrade_still_works_and_the_limit_is_off_by_default(
        pair, redis_server, key_prefix) -> None:
    gw1, _ = pair
    client = await Client.open(gw1.url, token())  # frames after a delayed 101 arrive fine
    assert await client.ok("ping") == {"pong": True}
    await client.close()
    assert GatewaySettings().connect_rate_per_ip == 0
    plain = Gateway(redis_server.url, key_prefix + "x").start()
    try:
        assert [await attempt(plain.url) for _ in range(10)] == [101] * 10
    finally:
        plain.terminate()


async def test_trusted_proxies_must_parse() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        GatewaySettings(trusted_proxies="10.0.0.0/8, proxy.internal")
