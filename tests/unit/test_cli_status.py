"""`goldwire status`'s table and URL choice, from deep readiness answers written out."""

from __future__ import annotations

from goldwire.cli.status import format_table, status_url

READY = {
    "ready": True,
    "gateway": {"ready": True, "checks": {"pubsub": True, "redis": True}, "node": "gw-1"},
    "services": {
        "presence": {"ready": True, "checks": {"consumer": True, "redis": True, "lag_ok": True}},
        "sessions": {"ready": True, "checks": {"consumer": True, "redis": True}},
        "activity": {"ready": True, "checks": {"consumer": True, "redis": True, "lag_ok": True}},
    },
    "stream": {"partitions": 16, "groups": {
        "presence": {"lag": 0, "pending": 0, "consumers": 1},
        "sessions": {"lag": 12, "pending": 3, "consumers": 1},
        "activity": {"lag": None, "pending": 0, "consumers": 1},
    }},
}


def test_every_part_is_one_aligned_row_with_its_lag() -> None:
    assert format_table(READY).splitlines() == [
        "SERVICE   READY  LAG             DETAIL",
        "gateway   yes    -               ok",
        "presence  yes    0 (0 pending)   ok",
        "sessions  yes    12 (3 pending)  ok",
        "activity  yes    ? (0 pending)   ok",
        "all ready",
    ]


def test_a_failed_check_an_unreachable_service_and_a_stray_group_are_named() -> None:
    answer = {
        **READY, "ready": False,
        "services": {
            **READY["services"],
            "presence": {"ready": False, "checks": {"consumer": False, "redis": True,
                                                    "lag_ok": False}},
            "activity": {"ready": False, "error": "unreachable: connection refused"},
        },
        "stream": {"partitions": 16, "groups": {
            **READY["stream"]["groups"], "reports": {"lag": 7, "pending": 0, "consumers": 0}}},
    }
    assert format_table(answer).splitlines() == [
        "SERVICE        READY  LAG             DETAIL",
        "gateway        yes    -               ok",
        "presence       NO     0 (0 pending)   failed: consumer, lag_ok",
        "sessions       yes    12 (3 pending)  ok",
        "activity       NO     ? (0 pending)   unreachable: connection refused",
        "group reports  -      7 (0 pending)   consumers: 0",
        "not ready: presence, activity",
    ]


def test_a_service_without_a_group_and_a_stream_error() -> None:
    answer = {"ready": False, "gateway": {"ready": False, "checks": {"pubsub": True,
                                                                     "redis": False}},
              "services": {"sessions": {"ready": True, "checks": {}}},
              "stream": {"partitions": 16, "groups": {}, "error": "Connection refused"}}
    assert format_table(answer).splitlines() == [
        "SERVICE   READY  LAG  DETAIL",
        "gateway   NO     -    failed: redis",
        "sessions  yes    -    ok",
        "stream    -      -    Connection refused",
        "not ready: gateway",
    ]


def test_the_url_comes_from_the_flag_then_gateway_url_then_host_and_port() -> None:
    env = {"GATEWAY_URL": "http://gw.internal:9000/", "GATEWAY_PORT": "8100"}
    assert status_url("http://other:1/", env) == "http://other:1"
    assert status_url(None, env) == "http://gw.internal:9000"
    assert status_url(None, {"GATEWAY_PORT": "8100", "GATEWAY_URL": ""}) == \
        "http://127.0.0.1:8100"
    assert status_url(None, {}) == "http://127.0.0.1:8000"
