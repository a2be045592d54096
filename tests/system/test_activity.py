"""Activity end to end: a scripted event log in, exact histories and analytics out.

A real activity process (`python -m goldwire.cli activity`) consumes events written
straight into the gateway event stream with explicit times over three days; the
answers are checked against numbers worked out by hand below.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.activity_log import DAY, HOUR, MIN, Log, write
from tests.support import Activity, until

pytestmark = pytest.mark.asyncio

D0 = (int(time.time() * 1000) // DAY - 3) * DAY  # three days ago, 00:00 UTC
D1, D2 = D0 + DAY, D0 + 2 * DAY


def at(day: int, hh: int, mm: int = 0, ss: int = 0) -> int:
    return day + hh * HOUR + mm * MIN + ss * 1000


def scripted_log() -> Log:
    log = Log()
    # Day 0
    log.connect(at(D0, 9), "c1", "ada")
    log.join(at(D0, 9, 0, 1), "c1", "doc:1")
    log.publish(at(D0, 9, 5), "c1", "doc:1")
    log.publish(at(D0, 9, 6), "c1", "doc:1", "document_update")
    log.leave(at(D0, 9, 30, 1), "c1", "doc:1")  # ada in doc:1 for 30 min
    log.connect(at(D0, 10), "c2", "bob")
    log.join(at(D0, 10, 0, 10), "c2", "doc:1")
    log.join(at(D0, 10, 0, 20), "c2", "doc:2")
    log.publish(at(D0, 10, 10), "c2", "doc:2")
    log.publish(at(D0, 10, 10, 30), "c2", "doc:2")
    log.add("send", at(D0, 10, 20), "c2", to="ada")
    log.disconnect(at(D0, 10, 30, 10), "c2", ["doc:1", "doc:2"])  # 30:00 and 29:50
    log.add("publish", at(D0, 11), tenant="acme", room="doc:3", type="notification",
            source="api", offset="1-0")
    log.join(at(D0, 23, 30), "c1", "doc:2")
    # Day 1
    log.leave(at(D1, 0, 30), "c1", "doc:2")  # one hour over midnight: 30 min on each day
    log.disconnect(at(D1, 1), "c1")
    log.connect(at(D1, 8), "c3", "cy")
    log.join(at(D1, 8, 0, 5), "c3", "doc:3")
    for m in (1, 2, 3):
        log.publish(at(D1, 8, m), "c3", "doc:3", "document_update")
    log.add("status", at(D1, 8, 5), "c3", status="away")
    # Day 2: bob stays connected, in doc:1
    log.connect(at(D2, 12), "c4", "bob")
    log.join(at(D2, 12, 0, 1), "c4", "doc:1")
    log.publish(at(D2, 12, 10), "c4", "doc:1")
    log.publish(at(D2, 12, 11), "c4", "doc:1")
    # Another tenant: its own rooms; a leave written before its join; API use
    log.connect(at(D2, 12), "z1", "zed", tenant="other")
    join = log.join(at(D2, 12, 1), "z1", "doc:1")
    leave = log.leave(at(D2, 12, 2), "z1", "doc:1")
    log.events[-2:] = [leave, join]  # delivered out of order
    log.add("api", at(D2, 12, 3), "z1", method="GET", route="/v2/sync/presence", code="200")
    # A claimed batch applied late: yan's join arrives after the leave and the disconnect
    # (10 min in doc:2); xia's leave after the disconnect (5 min in doc:3, not 30).
    log.connect(at(D2, 14), "y1", "yan", tenant="other")
    y_join = log.join(at(D2, 14, 0, 10), "y1", "doc:2")
    y_leave = log.leave(at(D2, 14, 10, 10), "y1", "doc:2")
    log.disconnect(at(D2, 14, 20), "y1", [])
    log.events[-3:] = [log.events[-1], y_leave, y_join]
    log.connect(at(D2, 15), "x1", "xia", tenant="other")
    log.join(at(D2, 15), "x1", "doc:3")
    x_leave = log.leave(at(D2, 15, 5), "x1", "doc:3")
    log.disconnect(at(D2, 15, 30), "x1", ["doc:3"])
    log.events[-2:] = [log.events[-1], x_leave]
    # After a Redis gap gateways re-announce their connections (replay=1): bob's join is
    # known already; dan's connection is not (as after a data loss). Live state only.
    log.add("join", at(D2, 13), "c4", room="doc:1", replay=1)
    log.connect(at(D2, 13), "c9", "dan")
    log.events[-1]["replay"] = "1"
    log.add("join", at(D2, 13), "c9", room="doc:2", replay=1)
    # Older than the retention window: not recorded.
    log.add("status", D0 - 40 * DAY, "c1", status="away")
    return log


REPLAYED, TOO_OLD = 3, 1


@pytest.fixture
async def recorded(redis_server, key_prefix) -> AsyncIterator[tuple[Activity, Redis]]:
    """An activity process that has recorded the scripted log (written twice)."""
    redis = Redis.from_url(redis_server.url)
    log = scripted_log()
    await write(redis, key_prefix, log.events)
    # The same events again, as a gateway re-sending a batch it could not confirm.
    await write(redis, key_prefix, log.events)
    service = Activity(redis_server.url, key_prefix, activity_rollup_interval=1,
                       activity_sweep_interval=0).start()

    async def done() -> bool:
        return metrics(service.metrics())["events_seen_total"] >= 2 * len(log.events)

    try:
        await until(done)
        m = metrics(service.metrics())
        recorded = len(log.events) - REPLAYED - TOO_OLD
        assert m["events_recorded_total"] == recorded
        assert m["events_duplicate_total"] == recorded
        assert m["events_replayed_total"] == 2 * REPLAYED  # idempotent, never counted
        assert m["events_too_old_total"] == 2 * TOO_OLD
        yield service, redis
    finally:
        service.terminate()
        await redis.aclose()


def metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()
            out[name.removeprefix("goldwire_activity_")] = float(value)
    return out


async def get(service: Activity, path: str, **params: Any) -> Any:
    async with service.api() as http:
        resp = await http.get(path, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_histories_newest_first_with_filters(recorded) -> None:
    service, _ = recorded
    page = await get(service, "/v1/activity/users/ada", tenant="acme")
    assert [(e["kind"], e.get("room")) for e in page["items"]] == [
        ("disconnect", None), ("leave", "doc:2"), ("join", "doc:2"), ("leave", "doc:1"),
        ("publish", "doc:1"), ("publish", "doc:1"), ("join", "doc:1"), ("connect", None)]
    assert page["next"] is None
    assert [e["ts"] for e in page["items"]] == sorted((e["ts"] for e in page["items"]),
                                                      reverse=True)
    docs = await get(service, "/v1/activity/users/ada", tenant="acme", type="document_update")
    assert [e["ts"] for e in docs["items"]] == [at(D0, 9, 6)]
    joins = await get(service, "/v1/activity/users/ada", tenant="acme", type="join,leave",
                      since=at(D0, 12), until=at(D1, 12))
    assert [e["kind"] for e in joins["items"]] == ["leave", "join"]
    iso = await get(service, "/v1/activity/users/ada", tenant="acme",
                    since=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(D1 / 1000)))
    assert [e["kind"] for e in iso["items"]] == ["disconnect", "leave"]

    room = await get(service, "/v1/activity/rooms/doc:3", tenant="acme")
    assert [(e["kind"], e.get("user")) for e in room["items"]] == [
        ("publish", "cy"), ("publish", "cy"), ("publish", "cy"), ("join", "cy"),
        ("publish", None)]
    assert room["items"][-1]["source"] == "api"
    doc1 = await get(service, "/v1/activity/rooms/doc:1", tenant="acme", limit=3)
    assert len(doc1["items"]) == 3 and doc1["next"]
    rest = await get(service, "/v1/activity/rooms/doc:1", tenant="acme", cursor=doc1["next"])
    assert len(rest["items"]) == 5 and rest["next"] is None  # 8 entries in doc:1
    # Tenants never see each other's rooms.
    other = await get(service, "/v1/activity/rooms/doc:1", tenant="other")
    assert {e["user"] for e in other["items"]} == {"zed"}


async def test_analytics_summary_counts_top_rooms_and_active_users(recorded) -> None:
    service, _ = recorded

    async def summary() -> Any:
        s = await get(service, "/v1/analytics/summary", tenant="acme",
                      **{"from": D0, "to": D0 + 3 * DAY})
        # consistent once a roll-up ran after the last event (ACTIVITY_ROLLUP_INTERVAL)
        done = s["events"] == 26 and [p["active_users"] for p in s["series"]] == [2, 2, 1]
        return s if done else None

    s = await until(summary)
    assert s["resolution"] == "day" and s["from"] == D0 and s["to"] == D0 + 3 * DAY
    assert s["messages"] == 11
    assert s["events_by_kind"] == {"connect": 4, "disconnect": 2, "join": 6, "leave": 2,
                                   "publish": 10, "send": 1, "status": 1}
    assert s["messages_by_type"] == {"document_update": 4, "notification": 1,
                                     "user_message": 6}
    assert s["api"] == {"publish": 1}
    assert s["top_rooms"] == [{"room": "doc:1", "messages": 4}, {"room": "doc:3", "messages": 4},
                              {"room": "doc:2", "messages": 2}]
    assert (s["active_users"], s["active_users_exact"]) == (3, True)
    assert [(p["t"], p["events"], p["messages"], p["active_users"]) for p in s["series"]] == [
        (D0, 14, 6, 2), (D1, 8, 3, 2), (D2, 4, 2, 1)]

    # An hourly window: 09:00-11:00 of day 0, and one room's messages in it.
    h = await get(service, "/v1/analytics/summary", tenant="acme", room="doc:2",
                  **{"from": at(D0, 9), "to": at(D0, 11)})
    assert h["resolution"] == "hour"
    assert [(p["events"], p["messages"], p["active_users"], p["room_messages"])
            for p in h["series"]] == [(5, 2, 1, 0), (7, 3, 1, 2)]
    assert h["room"] == {"room": "doc:2", "messages": 2}
    assert h["active_users"] == 2

    # Per minute: day 1, 08:00-08:05, three document updates in doc:3 (08:01, :02, :03).
    m = await get(service, "/v1/analytics/minutes", tenant="acme", room="doc:3",
                  **{"from": at(D1, 8), "to": at(D1, 8, 5)})
    assert m["resolution"] == "minute"
    assert [(p["t"], p["messages"], p["room_messages"]) for p in m["series"]] == [
        (at(D1, 8), 0, 0), (at(D1, 8, 1), 1, 1), (at(D1, 8, 2), 1, 1), (at(D1, 8, 3), 1, 1),
        (at(D1, 8, 4), 0, 0)]
    assert m["series"][1]["messages_by_type"] == {"document_update": 1}

    other = await until(lambda: get_nonzero(service, "other"))
    assert other["api"] == {"GET /v2/sync/presence 200": 1}
    assert other["active_users"] == 3


async def get_nonzero(service: Activity, tenant: str) -> Any:
    s = await get(service, "/v1/analytics/summary", tenant=tenant,
                  **{"from": D0, "to": D0 + 3 * DAY})
    return s if s["events"] else None


async def test_user_summaries_time_in_rooms(recorded) -> None:
    service, _ = recorded
    window = {"tenant": "acme", "from": D0, "to": D0 + 3 * DAY}
    ada = await get(service, "/v1/activity/users/ada/summary", **window)
    assert ada["last_active"] == at(D1, 1)
    assert (ada["events"], ada["messages_sent"], ada["rooms_visited"]) == (8, 2, 2)
    assert ada["rooms"] == [{"room": "doc:2", "joins": 1, "time_ms": HOUR},
                            {"room": "doc:1", "joins": 1, "time_ms": 30 * MIN}]
    assert ada["time_in_rooms_ms"] == HOUR + 30 * MIN
    day1 = await get(service, "/v1/activity/users/ada/summary", tenant="acme",
                     **{"from": D1, "to": D1 + DAY})
    assert day1["rooms"] == [{"room": "doc:2", "joins": 0, "time_ms": 30 * MIN}]
    bob = await get(service, "/v1/activity/users/bob/summary", **window)
    assert (bob["events"], bob["messages_sent"], bob["last_active"]) == (11, 5, at(D2, 12, 11))
    assert bob["rooms"] == [{"room": "doc:1", "joins": 2, "time_ms": 30 * MIN},
                            {"room": "doc:2", "joins": 1, "time_ms": 29 * MIN + 50_000}]
    cy = await get(service, "/v1/activity/users/cy/summary", **window)
    assert cy["rooms"] == [{"room": "doc:3", "joins": 1, "time_ms": 0}]  # still there
    # The leave that arrived before its join still closes the visit.
    zed = await get(service, "/v1/activity/users/zed/summary", tenant="other",
                    **{"from": D0, "to": D0 + 3 * DAY})
    assert zed["rooms"] == [{"room": "doc:1", "joins": 1, "time_ms": MIN}]
    # Events of a connection applied after its disconnect still give the true visit.
    for user, room, minutes in (("yan", "doc:2", 10), ("xia", "doc:3", 5)):
        got = await get(service, f"/v1/activity/users/{user}/summary", tenant="other",
                        **{"from": D0, "to": D0 + 3 * DAY})
        assert got["rooms"] == [{"room": room, "joins": 1, "time_ms": minutes * MIN}], user


async def test_live_state_from_the_events(recorded) -> None:
    service, _ = recorded
    live = await get(service, "/v1/analytics/live", tenant="acme")
    # cy (c3) and bob (c4) never disconnected; bob is in doc:1, cy in doc:3; dan's
    # connection (c9, in doc:2) was rebuilt from the replay.
    assert (live["connections"], live["users"], live["rooms"]) == (3, 3, 3)
    assert live["members"] == {"doc:1": 1, "doc:2": 1, "doc:3": 1}
    dan = await get(service, "/v1/activity/users/dan", tenant="acme")
    assert dan["items"] == []  # a replay is not activity
    assert live["messages_last_minute"] == 0  # the log is days old: the wall clock decides
    other = await get(service, "/v1/analytics/live", tenant="other")
    assert (other["connections"], other["members"]) == (1, {})  # zed; yan and xia left


async def test_bad_parameters_are_422_with_a_clear_message(recorded) -> None:
    service, _ = recorded
    cases = [
        ("/v1/activity/users/ada", {"limit": 0}, "limit"),
        ("/v1/activity/users/ada", {"limit": 5000}, "limit"),
        ("/v1/activity/users/ada", {"since": "yesterday"}, "since"),
        ("/v1/activity/users/ada", {"since": 2000, "until": 1000}, "since is after until"),
        ("/v1/activity/users/ada", {"type": "bogus"}, "type: unknown 'bogus'"),
        ("/v1/activity/users/ada", {"cursor": "!!nope"}, "cursor"),
        ("/v1/activity/users/ada", {"tenant": "a/b"}, "tenant"),
        ("/v1/activity/rooms/bad room", {}, "room"),
        ("/v1/analytics/summary", {"from": 5000, "to": 1000}, "from is after to"),
        ("/v1/analytics/summary", {"from": 0, "to": 500 * DAY}, "400 days"),
        ("/v1/analytics/summary", {"top": 0}, "top"),
        ("/v1/activity/users/ada/summary", {"to": "soon"}, "to"),
    ]
    async with service.api() as http:
        for path, params, needle in cases:
            resp = await http.get(path, params=params)
            assert resp.status_code == 422, (path, params, resp.text)
            assert needle in resp.json()["detail"], (path, params, resp.json())
        no_key = await http.get("/v1/analytics/live", headers={"Authorization": "Bearer x"})
        assert no_key.status_code == 401
