"""Rooms on this node: joins with gap-free recovery, fan-out, and catch-up after a Redis gap.

Join is two steps so that nothing is lost or doubled between replay and live:

1. `prepare_join` (async): make sure the node is subscribed to the room
   (confirmed), start buffering live messages for the joiner, then read the
   room's latest offset and, with `since`, the missed entries, in one atomic
   script.
2. `complete_join` (sync, no await): the caller writes its reply, then this
   writes the replay, then the buffered live messages newer than the read,
   then makes the joiner a member. Live messages newer than the read arrived
   after the subscription, so they are all in the buffer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from goldwire.gateway.framing import text_frame
from goldwire.gateway.groups import GroupTable, LocalGroup, deliver_each
from goldwire.protocol.channels import ChannelMessageError, PresenceDiffNote, parse_room
from goldwire.protocol.frames import state_frame
from goldwire.protocol.messages import encode
from goldwire.protocol.offsets import Offset, parse_offset
from goldwire.protocol.room_options import RoomPolicy
from goldwire.store.connect import STORE_ERRORS

if TYPE_CHECKING:
    from goldwire.gateway.broker import RedisBroker, RoomHistory
    from goldwire.gateway.metrics import GatewayMetrics
    from goldwire.protocol.keys import Keys

log = logging.getLogger("goldwire.gateway.rooms")

ZERO: Offset = (0, 0)
MAX_WAITING_DIFFS = 1000  # presence diffs kept for a member still waiting for its state


class LocalRoom(LocalGroup):
    """A room's members on this node; its pub/sub messages are channels.parse_room's."""

    __slots__ = ("base_offset", "catchup", "last_offset", "name", "pending", "presence",
                 "presence_seen", "presence_waiting", "state_reader", "state_waiters", "tenant")

    def __init__(self, channel: bytes, metrics: GatewayMetrics, tenant: str, name: str,
                 presence: bool = True) -> None:
        super().__init__(channel, metrics)
        self.tenant = tenant
        self.name = name
        self.presence = presence  # ROOM_OPTIONS: False = no presence states or diffs here
        self.pending: dict[Any, list[tuple[Offset, bytes]]] = {}  # joiner -> buffered live
        self.catchup: list[tuple[Offset, bytes]] | None = None  # buffered during a Redis gap
        self.last_offset: Offset = ZERO  # newest offset fanned out by this node
        self.base_offset: Offset | None = None  # latest offset when the node first joined
        # Presence: the version each member has seen; members missing here still wait
        # for their full state and keep the diffs that arrive meanwhile.
        self.presence_seen: dict[Any, int] = {}
        self.presence_waiting: dict[Any, list[tuple[int, bytes]]] = {}
        # Members whose state presence announced and this node has yet to read.
        self.state_waiters: set[Any] = set()
        self.state_reader: asyncio.Task[None] | None = None

    def on_pubsub(self, data: bytes) -> None:
        try:
            message = parse_room(data)
        except ChannelMessageError as exc:
            log.warning("room channel %r: dropped a message: %s", self.channel, exc)
            return
        if isinstance(message, PresenceDiffNote):  # no history: not part of catch-up
            self.presence_diff(message.version, message.frame)
            return
        if self.catchup is not None:
            self.catchup.append((message.offset, message.frame))
            return
        self.fanout(message.offset, message.frame)

    def fanout(self, offset: Offset, payload: bytes) -> None:
        if offset <= self.last_offset:
            return  # a catch-up replay already delivered it
        self.last_offset = offset
        metrics = self.metrics
        metrics.room_messages += 1
        if self.members:
            self.deliver(payload)
            # Once per message, not per socket: the offset's ms is the frame's ts (the
            # Redis clock at publish), so this is publish to our local sockets' writes.
            metrics.publish_to_socket.observe(max(0.0, time.time() - offset[0] / 1000))
        for buffer in self.pending.values():
            buffer.append((offset, payload))

    def is_idle(self) -> bool:
        return not self.members and not self.pending

    # --- presence -------------------------------------------------------------------
    def presence_diff(self, version: int, frame: bytes) -> None:
        """A diff goes to members that have their state and have not seen this version."""
        seen = self.presence_seen
        due = []
        for transport in self.members:
            last = seen.get(transport)
            if last is None:
                waiting = self.presence_waiting.get(transport)
                if waiting is not None and len(waiting) < MAX_WAITING_DIFFS:
                    waiting.append((version, frame))
            elif version > last:
                seen[transport] = version
                due.append(transport)
        if due:  # the same guarded write as every fan-out (groups.deliver_each)
            deliver_each(due, text_frame(frame), frame, self.forget)

    def presence_state(self, transport: Any, version: int, frame: bytes) -> None:
        """The full state for one member, then what it missed while waiting for it."""
        if transport not in self.members:
            return
        transport.send(frame)
        self.presence_seen[transport] = version
        for diff_version, diff in self.presence_waiting.pop(transport, ()):
            if diff_version > self.presence_seen[transport]:
                self.presence_seen[transport] = diff_version
                transport.send(diff)

    def forget(self, transport: Any) -> None:
        self.members.discard(transport)
        self.pending.pop(transport, None)
        self.presence_seen.pop(transport, None)
        self.presence_waiting.pop(transport, None)
        self.state_waiters.discard(transport)


class PendingJoin:
    """A join between its history read and its completion."""

    __slots__ = ("buffer", "conn", "history", "room", "since")

    def __init__(self, room: LocalRoom, conn: Any, since: str | None, history: RoomHistory,
                 buffer: list[tuple[Offset, bytes]]) -> None:
        self.room = room
        self.conn = conn
        self.since = since
        self.history = history
        self.buffer = buffer

    def result(self) -> dict[str, Any]:
        data: dict[str, Any] = {"room": self.room.name, "offset": self.history.latest.decode()}
        if self.since is not None:
            data["recovered"] = self.history.recovered
        if not self.room.presence:
            data["presence"] = False  # the room's options: no presence_update will come
        return data


class RoomHub:
    def __init__(self, table: GroupTable, broker: RedisBroker, keys: Keys,
                 metrics: GatewayMetrics, policy: RoomPolicy | None = None) -> None:
        self.policy = policy or RoomPolicy()
        self.table = table
        self.broker = broker
        self.keys = keys
        self.metrics = metrics
        self._state_readers: set[asyncio.Task[None]] = set()

    def channel(self, tenant: str, room: str) -> bytes:
        return self.keys.room_channel(tenant, room).encode()

    async def prepare_join(
        self, conn: Any, tenant: str, name: str, since: str | None
    ) -> PendingJoin:
        room = await self.table.acquire(
            self.channel(tenant, name),
            lambda ch: LocalRoom(ch, self.metrics, tenant, name,
                                 self.policy.for_room(name).presence))
        buffer: list[tuple[Offset, bytes]] = []
        room.pending[conn.transport] = buffer
        try:
            history = await self.broker.read_room(tenant, name, since)
        except BaseException:
            room.pending.pop(conn.transport, None)
            self.table.release(room, conn.now())
            raise
        if room.base_offset is None:
            room.base_offset = parse_offset(history.resume_offset())
        return PendingJoin(room, conn, since, history, buffer)

    def complete_join(self, join: PendingJoin) -> bool:
        """Replay, flush the buffer, and make the joiner a member; False if it left meanwhile."""
        room, transport = join.room, join.conn.transport
        room.pending.pop(transport, None)
        if not transport.is_open():
            self.table.release(room, join.conn.now())
            return False
        if join.history.recovered:
            for _offset, frame in join.history.entries:
                transport.send(frame)
        cutoff = parse_offset(join.history.latest)
        for offset, payload in join.buffer:
            if offset > cutoff:
                transport.send(payload)
        room.members.add(transport)
        if room.presence:
            room.presence_waiting[transport] = []
        return True

    # --- presence states ------------------------------------------------------------
    def presence_state_ready(self, room: LocalRoom, transports: list[Any]) -> None:
        """Presence announced the state of these members: read the room once for all of
        them (and again for members announced while a read is in flight, which it may
        not show), then send it."""
        room.state_waiters.update(t for t in transports if t in room.members)
        if room.state_waiters and room.state_reader is None:
            room.state_reader = asyncio.create_task(self._send_states(room))
            self._state_readers.add(room.state_reader)
            room.state_reader.add_done_callback(self._state_readers.discard)

    async def _send_states(self, room: LocalRoom) -> None:
        delay = 0.05
        try:
            while room.state_waiters:
                waiters, room.state_waiters = room.state_waiters, set()
                try:
                    version, members = await self.broker.read_presence(room.tenant, room.name)
                except STORE_ERRORS as exc:  # kept; Redis comes back or they leave
                    log.warning("presence state read failed for room %s: %s", room.name, exc)
                    room.state_waiters |= {t for t in waiters if t in room.members}
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                frame = state_frame(room.name, version, members)
                for transport in waiters:
                    room.presence_state(transport, version, frame)
        finally:
            room.state_reader = None

    def close(self) -> None:
        for task in list(self._state_readers):
            task.cancel()

    def abandon(self, join: PendingJoin) -> None:
        join.room.pending.pop(join.conn.transport, None)
        self.table.release(join.room, join.conn.now())

    def leave(self, conn: Any, room: LocalRoom) -> None:
        room.forget(conn.transport)
        self.table.release(room, conn.now())

    def rooms(self) -> list[LocalRoom]:
        return [g for g in self.table.groups.values() if isinstance(g, LocalRoom)]

    # --- Redis gaps ------------------------------------------------------------
    def pause(self) -> None:
        """The live feed broke: buffer what arrives until the gap is filled."""
        for room in self.rooms():
            if room.catchup is None:
                room.catchup = []

    async def catch_up(self) -> None:
        """After resubscribing: deliver what was published during the gap, in order.

        Where history cannot prove nothing was lost (Redis restarted without
        persistence, history trimmed), members get a `room_update` of kind
        `resync` and should reload the room over HTTP.
        """
        for room in self.rooms():
            if room.catchup is None:
                room.catchup = []
            since = max(room.last_offset, room.base_offset or ZERO)
            try:
                history = await self.broker.read_room(room.tenant, room.name, _fmt(since))
                recovered = history.recovered
            except Exception:
                log.warning("catch-up read failed for room %s", room.name, exc_info=True)
                recovered, history = False, None
            if recovered and history is not None:
                for raw_offset, frame in history.entries:
                    room.fanout(parse_offset(raw_offset), frame)
            else:
                room.last_offset = ZERO  # offsets restart with the new history
                room.deliver(encode({"type": "room_update", "room": room.name,
                                     "data": {"kind": "resync", "reason": "history_lost"}}))
            buffered, room.catchup = room.catchup or [], None
            for offset, payload in buffered:
                room.fanout(offset, payload)


def _fmt(offset: Offset) -> str:
    return f"{offset[0]}-{offset[1]}"
