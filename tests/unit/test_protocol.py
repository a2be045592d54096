"""libs/protocol: every model round-trips, parse errors are precise, names are safe."""

from __future__ import annotations

import json

import pytest

from goldwire.protocol import (
    CLOSE_TABLE,
    COMMAND_TYPES,
    BadFrame,
    CloseCode,
    Keys,
    Message,
    MessageType,
    is_tenant,
    parse_command,
    parse_offset,
    room_matches,
)
from goldwire.protocol import messages as m
from goldwire.protocol.frames import build_frame, room_frame_parts
from goldwire.protocol.http import PublishRequest

COMMAND_EXAMPLES = [
    {"op": "connect", "token": "t", "session_id": "abc",
     "rooms": [{"room": "doc:1", "since": "1-0"}]},
    {"op": "join", "room": "doc:1", "since": "1732771234567-0", "ref": 7},
    {"op": "leave", "room": "doc:1", "ref": "x"},
    {"op": "publish", "room": "doc:1", "type": "document_update", "data": {"a": 1}},
    {"op": "send", "user": "u2", "data": {"hi": True}},
    {"op": "status", "status": "away", "meta": {"device": "phone"}},
    {"op": "ping"},
    {"op": "session", "state": {"tab": "comments"}},
    {"op": "prefs", "values": {"theme": "dark"}, "version": 3},
    {"op": "refresh", "token": "t", "ref": 9},
]


@pytest.mark.parametrize("frame", COMMAND_EXAMPLES, ids=lambda f: f["op"])
def test_every_command_round_trips(frame: dict) -> None:
    command = parse_command(json.dumps(frame))
    again = parse_command(command.model_dump_json(exclude_none=True))
    assert again == command
    assert command.op == frame["op"]


def test_examples_cover_every_command() -> None:
    assert {f["op"] for f in COMMAND_EXAMPLES} == {t.model_fields["op"].annotation.__args__[0]
                                                   for t in COMMAND_TYPES}


MESSAGE_EXAMPLES = [
    {"type": "document_update", "room": "doc:42", "offset": "1732771234567-0",
     "ts": 1732771234567, "from": {"id": "u1", "name": "Ada"}, "data": {"op": "insert"}},
    {"type": "user_message", "room": "chat:1", "offset": "1-0", "ts": 1, "data": {"text": "hi"}},
    {"type": "system_message", "data": {"pong": True}, "ref": 3},
    {"type": "presence_update", "room": "doc:1",
     "data": {"kind": "state", "members": [{"user": {"id": "u1", "name": None}, "status": "online",
                                            "connections": 2, "meta": {}}]}},
    {"type": "room_update", "room": "doc:1", "data": {"kind": "resync"}},
    {"type": "notification", "data": {"title": "Signed"}},
    {"type": "error", "data": {"code": "bad_request", "message": "no"}, "ref": "r1"},
]


@pytest.mark.parametrize("frame", MESSAGE_EXAMPLES, ids=lambda f: f["type"])
def test_every_message_type_round_trips(frame: dict) -> None:
    msg = Message.model_validate(frame)
    assert json.loads(msg.model_dump_json(by_alias=True, exclude_none=True)) == frame


def test_examples_cover_the_seven_types() -> None:
    assert {f["type"] for f in MESSAGE_EXAMPLES} == {t.value for t in MessageType}


def test_reply_data_models_accept_what_the_gateway_sends() -> None:
    m.ConnectReply.model_validate({
        "conn_id": "n.1", "session_id": "s", "node": "n", "heartbeat": 30,
        "expires_at": 1732771234000,
        "session": {"id": "s", "resumed": False, "rooms": [], "state": {}},
        "user": {"id": "u1", "name": "Ada"},
        "rooms": [{"room": "doc:1", "offset": "0-0"},
                  {"room": "x", "error": {"code": "forbidden", "message": "no"}}],
    })
    m.PresenceDiff.model_validate({"kind": "diff", "version": 3, "joins": [], "leaves": [],
                                  "updates": []})
    with pytest.raises(ValueError):  # every presence frame carries its version
        m.PresenceDiff.model_validate({"kind": "diff", "joins": []})
    assert json.loads(m.error(m.ErrorCode.FORBIDDEN, "no", ref=4)) == {
        "type": "error", "data": {"code": "forbidden", "message": "no"}, "ref": 4}


@pytest.mark.parametrize(("frame", "ref", "fragment"), [
    ("not json", None, "not valid JSON"),
    ("[1, 2]", None, "must be a JSON object"),
    ('{"ref": 1}', 1, "missing field 'op'"),
    ('{"op": "dance", "ref": "a"}', "a", "unknown op 'dance'"),
    ('{"op": "join", "ref": 2}', 2, "field 'room': Field required"),
    ('{"op": "join", "room": "has space"}', None, "field 'room'"),
    ('{"op": "join", "room": "{tag}"}', None, "field 'room'"),
    ('{"op": "join", "room": "a", "since": "yesterday"}', None, "field 'since'"),
    ('{"op": "publish", "room": "a", "type": "error", "data": {}}', None, "field 'type'"),
    ('{"op": "publish", "room": "a", "type": "user_message", "data": [1]}', None, "field 'data'"),
    ('{"op": "status", "status": "sleeping"}', None, "field 'status'"),
    ('{"op": "prefs", "values": {}, "version": -1}', None, "field 'version'"),
    ('{"op": "ping", "ref": true}', None, "ref must be"),
])
def test_bad_frames_say_what_is_wrong(frame: str, ref: object, fragment: str) -> None:
    with pytest.raises(BadFrame) as info:
        parse_command(frame)
    assert fragment in info.value.message
    assert info.value.ref == ref
    assert info.value.code == "bad_request"


def test_offsets_compare_as_numbers() -> None:
    assert parse_offset("10-0") > parse_offset("9-5")
    assert parse_offset("5-10") > parse_offset("5-9")
    with pytest.raises(ValueError):
        parse_offset("5")


def test_room_patterns() -> None:
    assert room_matches("doc:42", ["doc:*"])
    assert room_matches("anything", ["*"])
    assert not room_matches("chat:1", ["doc:*"])
    assert room_matches("doc:a[1]", ["doc:a[1]"])
    assert not room_matches("doc:a1", ["doc:a[1]"])  # brackets are literal


def test_room_keys_share_one_cluster_slot_and_tenants_cannot_collide() -> None:
    keys = Keys("p")
    tag = "{r/acme/doc:1}"
    for name in (keys.history("acme", "doc:1"), keys.room_meta("acme", "doc:1"),
                 keys.room_channel("acme", "doc:1"), keys.room_idempotency("acme", "doc:1", "k")):
        assert tag in name and name.startswith("p:")
    assert not is_tenant("a/b")  # so "<tenant>/<room>" in a key has one reading
    with pytest.raises(ValueError):
        PublishRequest(room="c", tenant="a/b")


def test_close_table_covers_every_close_code() -> None:
    assert set(CLOSE_TABLE) == set(CloseCode)
    assert CLOSE_TABLE[CloseCode.DRAINING].recover
    assert CLOSE_TABLE[CloseCode.SESSION_REVOKED].reconnect.value == "no"


def test_stored_entries_rebuild_the_live_frame() -> None:
    head, tail = room_frame_parts("document_update", "doc:1", {"x": 1}, {"id": "u1"})
    frame = build_frame(head, b"1700000000000-3", tail)
    assert json.loads(frame) == {"type": "document_update", "room": "doc:1",
                                 "offset": "1700000000000-3", "ts": 1700000000000,
                                 "from": {"id": "u1"}, "data": {"x": 1}}


def test_publish_request_needs_exactly_one_target() -> None:
    with pytest.raises(ValueError):
        PublishRequest(room="a", user="b")
    with pytest.raises(ValueError):
        PublishRequest()
    assert PublishRequest(broadcast=True).tenant == "default"


def test_asyncapi_document_is_current() -> None:
    """docs/asyncapi.json is generated from the models; regenerate it when they change:
    `python -m goldwire.protocol.asyncapi > docs/asyncapi.json`."""
    from pathlib import Path

    from goldwire.protocol.asyncapi import build, render

    checked_in = Path(__file__).parents[2] / "docs" / "asyncapi.json"
    assert checked_in.read_text() == render(), "docs/asyncapi.json is stale"
    doc = build()
    assert doc["asyncapi"] == "3.0.0"
    ops = {name for name in doc["operations"] if name.startswith("receive")}
    assert len(ops) == len(COMMAND_TYPES)
    assert {m["name"] for m in doc["components"]["messages"].values()} >= {t.value for t in
                                                                            MessageType}
