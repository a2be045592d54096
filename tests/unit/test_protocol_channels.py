"""Every pub/sub channel message: formatted then parsed back, and what is refused."""

from __future__ import annotations

import pytest

from goldwire.protocol.channels import (
    ChannelMessageError,
    CloseConnection,
    CloseRoom,
    DisconnectUser,
    KickUser,
    PresenceDiffNote,
    RoomMessage,
    StatesReady,
    format_admin,
    format_close,
    format_presence_diff,
    format_room_message,
    format_states_ready,
    parse_node,
    parse_room,
)

FRAME = b'{"type":"user_message","room":"doc:1","data":{"text":"a b c"}}'


def test_room_message_round_trip() -> None:
    data = format_room_message("1732771234567-3", FRAME)
    assert data == b"1732771234567-3 " + FRAME
    assert parse_room(data) == RoomMessage((1732771234567, 3), FRAME)


def test_presence_diff_round_trip() -> None:
    data = format_presence_diff(42, FRAME)
    assert data == b"- 42 " + FRAME
    assert parse_room(data) == PresenceDiffNote(42, FRAME)


def test_states_ready_round_trip() -> None:
    data = format_states_ready("doc:1", 7, ["gw-a.1", "gw-b.9"])
    assert data == b"P doc:1\n7\ngw-a.1 gw-b.9"
    assert parse_node(data) == StatesReady("doc:1", 7, ("gw-a.1", "gw-b.9"))


def test_close_round_trip() -> None:
    data = format_close("gw-a.1", 4010, "session revoked")
    assert parse_node(data) == CloseConnection("gw-a.1", 4010, "session revoked")
    assert parse_node(b'{"kind":"close","conn":"c"}') == CloseConnection("c", 1000, "")


@pytest.mark.parametrize("command", [
    DisconnectUser("t1", "ada/x", 4011, "disconnected by an operator"),
    KickUser("t1", "ada", "doc:1", "spam"),
    KickUser("t1", "ada", "doc:1"),
    CloseRoom("default", "team/a=b"),
])
def test_admin_commands_round_trip(command) -> None:
    assert parse_node(format_admin(command)) == command


@pytest.mark.parametrize("data", [
    b"", b"nospace", b"abc {}", b"- x {}", b"- 5", b"9-x {}",
])
def test_bad_room_messages_are_refused(data: bytes) -> None:
    with pytest.raises(ChannelMessageError):
        parse_room(data)


@pytest.mark.parametrize("data", [
    b"", b"P doc:1", b"P doc:1\nseven\nc1", b"[]", b'{"kind":"open","conn":"c"}',
    b'{"kind":"close"}', b'{"kind":"close","conn":"c","code":"x"}', b"\xff",
    b"S c1\ndoc:1\n3\n{}",  # a state built by presence: no producer sends these any more
    b'{"kind":"kick","tenant":"t","user":"u"}', b'{"kind":"close_room","tenant":1,"room":"r"}',
    b'{"kind":"disconnect_user","tenant":"t","user":"u","code":"x"}',
])
def test_bad_node_messages_are_refused(data: bytes) -> None:
    with pytest.raises(ChannelMessageError):
        parse_node(data)
