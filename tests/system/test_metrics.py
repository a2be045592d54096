"""/metrics of real processes, parsed as Prometheus does: every family documented and
typed, the labelled counters labelled, and the histograms moving with real traffic."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Activity, Client, Gateway, Presence, Service, Sessions, token, until

pytestmark = pytest.mark.asyncio


@pytest.fixture
def stack(redis_server, key_prefix) -> Iterator[dict[str, Service]]:
    procs: dict[str, Service] = {}
    try:
        for kind, cls in (("gateway", Gateway), ("presence", Presence),
                          ("sessions", Sessions), ("activity", Activity)):
            procs[kind] = cls(redis_server.url, key_prefix).start()
        yield procs
    finally:
        for proc in procs.values():
            proc.terminate()


def scrape(proc: Service) -> dict[str, object]:
    """The process's families by name, after checking each has HELP and a TYPE."""
    resp = httpx.get(proc.http + "/metrics", timeout=2)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    assert families
    for family in families.values():
        assert family.documentation.strip(), f"{proc.kind}: {family.name} has no HELP"
        assert family.type in ("counter", "gauge", "histogram"), (family.name, family.type)
    return families


def value(families: dict, name: str, sample: str, **labels: str) -> float | None:
    """One sample's value (`sample` with these labels, besides `le`), or None."""
    for s in families[name].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            if "le" not in s.labels or "le" in labels:
                return s.value
    return None


def buckets(families: dict, name: str, **labels: str) -> list[float]:
    return [s.value for s in families[name].samples
            if s.name == f"{name}_bucket" and all(s.labels.get(k) == v
                                                 for k, v in labels.items())]


async def test_every_family_has_help_type_labels_and_moving_histograms(stack) -> None:
    gateway, presence = stack["gateway"], stack["presence"]
    before = scrape(gateway)
    assert value(before, "goldwire_gateway_publish_to_socket_seconds",
                 "goldwire_gateway_publish_to_socket_seconds_count") == 0
    assert value(before, "goldwire_gateway_command_seconds",
                 "goldwire_gateway_command_seconds_count", op="join") == 0

    r1, r2 = (f"doc:{uuid.uuid4().hex[:6]}" for _ in range(2))
    client = await Client.open(gateway.url, token("ada"), rooms=[{"room": r1}])
    await client.ok("join", room=r2)
    other = await Client.open(gateway.url, token("bob"), rooms=[{"room": r2}])
    async with gateway.api() as http:
        resp = await http.post("/v1/publish", json={"room": r2, "type": "document_update",
                                                    "data": {"v": 1}})
        assert resp.status_code == 200, resp.text
    for c in (client, other):
        assert (await c.recv_type("document_update"))["data"] == {"v": 1}
        await c.close()  # 1000, echoed by the gateway

    def closed_1000() -> dict | None:
        families = scrape(gateway)
        closed = value(families, "goldwire_gateway_connections_closed",
                       "goldwire_gateway_connections_closed_total", code="1000")
        return families if closed == 2 else None

    after = await until(closed_1000)
    g = "goldwire_gateway_"
    for op, n in (("connect", 2), ("join", 1)):
        assert value(after, g + "commands", g + "commands_total", op=op) == n
        assert value(after, g + "command_seconds", g + "command_seconds_count", op=op) == n
        counts = buckets(after, g + "command_seconds", op=op)
        assert len(counts) > 5 and counts == sorted(counts) and counts[-1] == n  # cumulative
    # One message to two sockets: one observation (once per message, not per socket).
    assert value(after, g + "publish_to_socket_seconds", g + "publish_to_socket_seconds_count") == 1
    assert buckets(after, g + "publish_to_socket_seconds")[-1] == 1
    assert value(after, g + "messages_published", g + "messages_published_total",
                 to="room", type="document_update") == 1
    assert value(after, g + "redis_seconds", g + "redis_seconds_count") >= 1
    # The names operators and older tests know, still there with their values.
    assert value(after, g + "connections_opened", g + "connections_opened_total") == 2
    assert value(after, g + "redis_latency_seconds", g + "redis_latency_seconds") > 0
    assert value(after, g + "connections", g + "connections") == 0

    def presence_saw_it() -> dict | None:
        families = scrape(presence)
        diffs = value(families, "goldwire_presence_join_to_diff_seconds",
                      "goldwire_presence_join_to_diff_seconds_count")
        joins = value(families, "goldwire_presence_events", "goldwire_presence_events_total",
                      kind="join")
        return families if diffs and joins == 3 else None

    families = await until(presence_saw_it)
    p = "goldwire_presence_"
    assert buckets(families, p + "join_to_diff_seconds")[-1] >= 1
    assert p + "webhook_seconds" in families  # no webhook configured: present, empty
    group = f"{presence.prefix}:presence"
    assert value(families, p + "stream_lag", p + "stream_lag", group=group) is not None
    assert value(families, p + "stream_pending", p + "stream_pending", group=group) == 0

    for kind in ("sessions", "activity"):
        families = scrape(stack[kind])
        name = f"goldwire_{kind}_stream_lag"
        assert value(families, name, name, group=f"{presence.prefix}:{kind}") is not None
