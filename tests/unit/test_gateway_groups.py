"""Fan-out on one node: every member gets each message once, a socket whose write
raises is cut off without stopping the message for the others, and a room's
presence diffs respect what each member has seen."""

from __future__ import annotations

import logging

import pytest

from goldwire.gateway.groups import LocalGroup
from goldwire.gateway.interfaces import Transport
from goldwire.gateway.metrics import GatewayMetrics
from goldwire.gateway.rooms import LocalRoom
from goldwire.gateway.transport import WebSocketTransport
from tests.unit.gateway_parts import FakeTransport


def test_fake_and_real_transports_have_every_member_of_the_protocol() -> None:
    wanted = {n for n in vars(Transport) if not n.startswith("_")} | {"awaiting_pong"}
    fake = FakeTransport()
    missing_fake = {n for n in wanted if not hasattr(fake, n)}
    real_methods = {n for n in wanted if callable(getattr(Transport, n, None))}
    missing_real = {n for n in real_methods if not hasattr(WebSocketTransport, n)}
    assert not missing_fake and not missing_real


def test_deliver_writes_one_message_to_every_member() -> None:
    metrics = GatewayMetrics()
    group = LocalGroup(b"u:alice", metrics)
    members = [FakeTransport() for _ in range(3)]
    group.members.update(members)
    group.deliver(b'{"type":"user_message"}')
    assert all(m.delivered == [b'{"type":"user_message"}'] for m in members)
    assert metrics.messages_out == 3


def test_a_socket_whose_write_raises_is_aborted_and_dropped_and_the_rest_still_get_it(
        caplog: pytest.LogCaptureFixture) -> None:
    metrics = GatewayMetrics()
    group = LocalGroup(b"t:acme", metrics)
    good = [FakeTransport() for _ in range(4)]
    broken = FakeTransport(fail=True)
    group.members.update([*good, broken])
    with caplog.at_level(logging.ERROR, logger="goldwire.gateway.groups"):
        group.deliver(b"one")
        group.deliver(b"two")
    assert all(m.delivered == [b"one", b"two"] for m in good)
    assert broken.aborted and broken not in group.members
    assert len([r for r in caplog.records if "write to one socket failed" in r.message]) == 1
    assert metrics.messages_out == 4 + 4


def test_room_messages_and_presence_diffs_skip_a_broken_socket() -> None:
    room = LocalRoom(b"r:acme:doc", GatewayMetrics(), "acme", "doc")
    good, broken = FakeTransport(), FakeTransport(fail=True)
    room.members.update([good, broken])
    room.presence_seen.update({good: 1, broken: 1})
    room.presence_diff(2, b"diff-2")
    assert good.delivered == [b"diff-2"]
    assert broken.aborted and broken not in room.members and broken not in room.presence_seen
    room.fanout((5, 0), b"message")
    assert good.delivered == [b"diff-2", b"message"]


def test_presence_diffs_wait_for_the_state_and_old_versions_are_dropped() -> None:
    room = LocalRoom(b"r:acme:doc", GatewayMetrics(), "acme", "doc")
    seen, joiner = FakeTransport(), FakeTransport()
    room.members.update([seen, joiner])
    room.presence_seen[seen] = 3
    room.presence_waiting[joiner] = []
    room.presence_diff(3, b"diff-3")  # already seen
    room.presence_diff(4, b"diff-4")
    room.presence_diff(5, b"diff-5")
    assert seen.delivered == [b"diff-4", b"diff-5"]
    assert joiner.delivered == [] and joiner.sent == []
    room.presence_state(joiner, 4, b"state-4")  # state at 4 already contains diff-4
    assert joiner.sent == [b"state-4", b"diff-5"]
    assert room.presence_seen[joiner] == 5
