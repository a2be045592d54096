"""The connection index's records: what a gateway writes, and what a reader keeps."""

from __future__ import annotations

from types import SimpleNamespace

from goldwire.gateway.conn_index import parse, record


def conn(cid: str, at: int, **kw: object) -> SimpleNamespace:
    fields = {"id": cid, "rooms": {"doc:b": 0, "doc:a": 0}, "connected_at": at,
              "session_id": "s1", "device": "", "status": "online", "meta": None, **kw}
    return SimpleNamespace(**fields)


def test_a_record_reads_back_and_only_live_nodes_count() -> None:
    records = {
        b"gw-b.2": record(conn("gw-b.2", 20, device="Firefox", meta={"tab": 2}), "gw-b").encode(),
        b"gw-a.1": record(conn("gw-a.1", 10), "gw-a").encode(),
        b"gw-dead.1": record(conn("gw-dead.1", 5), "gw-dead").encode(),
        b"gw-a.9": b"not json",
        b"gw-a.8": b'{"node": "gw-a"}',  # fields missing: skipped, not a 500
    }
    listed = parse(records, {"gw-a", "gw-b"})
    assert [c.conn for c in listed] == ["gw-a.1", "gw-b.2"]  # oldest first; the dead node's gone
    first, second = listed
    assert first.rooms == ["doc:a", "doc:b"] and first.device is None and first.session == "s1"
    assert second.device == "Firefox" and second.meta == {"tab": 2} and second.node == "gw-b"
