"""Live statistics from real gateways: counts, the `system:stats` push, dead gateways."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support import Activity, Client, Gateway, token, until
from tests.system.test_activity import get

pytestmark = pytest.mark.asyncio


async def stats_frame(dashboard: Client, check: Any, timeout: float = 15) -> dict[str, Any]:
    """The first stats message on the dashboard for which `check(data)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await dashboard.recv_type("system_message", timeout=max(0.1, deadline -
                                                                        time.monotonic()))
        data = msg["data"]
        if msg.get("room") == "system:stats" and data.get("kind") == "stats" and check(data):
            return data


async def test_live_stats_pushed_and_dead_gateway_swept(redis_server, key_prefix) -> None:
    g1 = Gateway(redis_server.url, key_prefix, node_ttl=2).start()
    g2 = Gateway(redis_server.url, key_prefix).start()
    activity = Activity(redis_server.url, key_prefix, activity_sweep_interval=1).start()
    try:
        dashboard = await Client.open(g2.url, token("admin", rooms=("system:*",)),
                                      rooms=[{"room": "system:stats"}])
        people = [await Client.open(g1.url, token(f"u{i}"), rooms=[{"room": room}])
                  for i, room in enumerate(["doc:a", "doc:a", "doc:b"])]
        for i in range(12):
            await people[i % 3].ok("publish", room=["doc:a", "doc:a", "doc:b"][i % 3],
                                   type="user_message", data={"n": i})
        data = await stats_frame(dashboard, lambda d: d["connections"] == 4
                                 and d["messages_last_minute"] == 12)
        assert data["members"] == {"doc:a": 2, "doc:b": 1, "system:stats": 1}
        assert data["users"] == 4 and data["tenant"] == "default"
        live = await get(activity, "/v1/analytics/live")
        assert live["connections"] == 4 and live["messages_per_second"] == 0.2

        g1.kill()  # no disconnect events: the sweep ends its three connections
        data = await stats_frame(dashboard, lambda d: d["connections"] == 1, timeout=20)
        assert data["members"] == {"system:stats": 1}
        u0 = await get(activity, "/v1/activity/users/u0")
        assert u0["items"][0]["kind"] == "disconnect" and u0["items"][0]["swept"] is True

        async def swept_time() -> Any:
            s = await get(activity, "/v1/activity/users/u0/summary")
            return s if s["time_in_rooms_ms"] > 0 else None

        summary = await until(swept_time)
        assert summary["rooms"][0]["room"] == "doc:a" and summary["messages_sent"] == 4
        await dashboard.close()
    finally:
        for proc in (g1, g2, activity):
            proc.terminate()
