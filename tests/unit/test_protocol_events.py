"""The event stream's one writer and one parser: every kind round-trips, malformed
entries are refused, and activity's byte-level reader takes what the writer writes."""

from __future__ import annotations

from typing import Any

import pytest

from goldwire.activity.events import pack_fields
from goldwire.presence.events import parse_event as presence_event
from goldwire.protocol.events import KINDS, MalformedEvent, StreamEvent, event_fields, parse_event

CONN = {"conn": "gw-a.1", "seq": 4, "user": "ada", "tenant": "acme", "session": "s1"}
SAMPLES = [
    StreamEvent("e1", "connect", "gw-a", 1000, **CONN, name="Ada", status="away",
                meta={"doc": "d1"}),
    StreamEvent("e2", "disconnect", "gw-a", 1001, **CONN, rooms=("doc:1", "doc:2"),
                offsets={"doc:1": "5-0"}),
    StreamEvent("e3", "join", "gw-a", 1002, **CONN, room="doc:1", name="Ada", offset="5-0",
                replay=True),
    StreamEvent("e4", "leave", "gw-a", 1003, **CONN, room="doc:1"),
    StreamEvent("e5", "publish", "gw-a", 1004, **CONN, room="doc:1", type="document_update",
                offset="6-0"),
    StreamEvent("e6", "publish", "pub-1", 1005, tenant="acme", to="bob", type="notification",
                source="api"),
    StreamEvent("e7", "send", "gw-a", 1006, **CONN, to="bob"),
    StreamEvent("e8", "status", "gw-a", 1007, **CONN, status="busy", meta={}),
    StreamEvent("e9", "session_state", "gw-a", 1008, **CONN),
    StreamEvent("e10", "api", "gw-a", 1009, method="GET", route="/v2/sync/presence",
                code="200"),
]


def as_stream(entry: dict[str, Any]) -> dict[bytes, bytes]:
    """What XREADGROUP returns for an entry XADD was given."""
    return {k.encode(): str(v).encode() for k, v in entry.items()}


def test_the_samples_cover_every_kind() -> None:
    assert {e.kind for e in SAMPLES} == set(KINDS)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.id)
def test_round_trip(event: StreamEvent) -> None:
    assert parse_event(as_stream(event.entry())) == event


def test_empty_values_are_left_out() -> None:
    entry = event_fields("leave", "e", "gw", 1, conn="c", seq=0, room="", name=None, user="u")
    assert entry == {"id": "e", "kind": "leave", "node": "gw", "ts": 1, "conn": "c", "user": "u"}


@pytest.mark.parametrize("raw", [
    {b"kind": b"teleport", b"id": b"e"},
    {b"id": b"e"},
    {b"kind": b"join", b"id": b"e", b"ts": b"soon", b"conn": b"c", b"user": b"u"},
    {b"kind": b"join", b"id": b"e", b"ts": b"1"},  # no connection
    {b"kind": b"connect", b"conn": b"c", b"user": b"u", b"seq": b"x"},
    {b"kind": b"disconnect", b"conn": b"c", b"user": b"u", b"rooms": b"[not json"},
])
def test_malformed_entries_are_refused(raw: dict[bytes, bytes]) -> None:
    with pytest.raises(MalformedEvent):
        parse_event(raw)


def test_bytes_no_writer_makes_fail_loudly_so_the_entry_is_dead_lettered() -> None:
    with pytest.raises(UnicodeDecodeError):
        parse_event({b"kind": b"join", b"conn": b"c", b"user": b"\xff\xfe"})


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.id)
def test_activity_reads_what_the_writer_writes(event: StreamEvent) -> None:
    packed = pack_fields(as_stream(event.entry()))
    if event.kind == "session_state":  # UI state is not activity
        assert packed is None
    else:
        assert packed is not None and packed[0] == event.tenant


def test_presence_keeps_its_kinds_with_status_and_meta_made_safe() -> None:
    kinds = {e.kind for e in SAMPLES if presence_event(as_stream(e.entry())) is not None}
    assert kinds == {"connect", "disconnect", "join", "leave", "status"}
    odd = as_stream(event_fields("status", "e", "gw", 1, conn="c", user="u", seq=1,
                                 status="dancing", meta=[1, 2]))
    parsed = presence_event(odd)
    assert parsed is not None and parsed.status == "online" and parsed.meta == "{}"
