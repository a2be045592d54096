"""Local groups: the connections of this node behind one pub/sub channel.

A user's connections, a tenant's connections and a room's members are each a
group. The node subscribes to a group's channel when the group gets its first
local connection and lets go of it a little after the last one leaves (the
sweep), so a refresh does not churn subscriptions. Fan-out frames a message
once and writes the same bytes to every member; a member whose write raises
is cut off (`write_failed`) and the rest still get the message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, TypeVar

from goldwire.gateway.framing import text_frame

if TYPE_CHECKING:
    from goldwire.gateway.broker import RedisBroker
    from goldwire.gateway.interfaces import Transport
    from goldwire.gateway.metrics import GatewayMetrics

log = logging.getLogger("goldwire.gateway.groups")

IDLE_UNSUBSCRIBE_SECONDS = 5.0


def write_failed(transport: Transport, exc: Exception,
                 drop: Callable[[Transport], None]) -> None:
    """One socket's write raised: log it once, cut that socket, keep it out of fan-out.

    A write should never raise (writes are non-blocking and a slow socket is
    closed with 4009), so this is a bug or a broken socket; either way it must
    not stop the message for the members after it in the loop.
    """
    log.error("write to one socket failed; aborting it", exc_info=exc)
    drop(transport)
    try:
        transport.abort()
    except Exception:  # already broken: connection_lost cleans up the rest
        pass


def deliver_each(transports: Collection[Transport], wire: bytes, payload: bytes,
                 drop: Callable[[Transport], None]) -> int:
    """Write one framed message to each transport; returns how many writes were made.

    Failures are handled after the loop, since `drop` may change `transports`."""
    failed: list[tuple[Transport, Exception]] | None = None
    for transport in transports:
        try:
            transport.deliver(wire, payload)
        except Exception as exc:
            failed = failed or []
            failed.append((transport, exc))
    if failed is None:
        return len(transports)
    delivered = len(transports) - len(failed)  # before `drop` shrinks a members set
    for transport, exc in failed:
        write_failed(transport, exc, drop)
    return delivered


class LocalGroup:
    """Members of one channel on this node; a pub/sub message is a finished frame."""

    __slots__ = ("channel", "idle_since", "members", "metrics", "ready")

    def __init__(self, channel: bytes, metrics: GatewayMetrics) -> None:
        self.channel = channel
        self.members: set[Any] = set()  # Transports (interfaces.py)
        self.metrics = metrics
        self.ready: asyncio.Future[None] | None = None
        self.idle_since: float | None = None

    def on_pubsub(self, data: bytes) -> None:
        self.deliver(data)

    def deliver(self, payload: bytes) -> None:
        members = self.members
        if not members:
            return
        wire = text_frame(payload)
        self.metrics.messages_out += deliver_each(members, wire, payload, self.forget)

    def forget(self, transport: Any) -> None:
        """Stop writing to `transport` (its write failed, or it left)."""
        self.members.discard(transport)

    def is_idle(self) -> bool:
        return not self.members


G = TypeVar("G", bound=LocalGroup)


class GroupTable:
    """Every group this node holds, keyed by channel, with their subscriptions."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker
        self.groups: dict[bytes, LocalGroup] = {}

    async def acquire(self, channel: bytes, factory: Callable[[bytes], G]) -> G:
        """The group of `channel`, subscribed (confirmed by Redis) before it returns."""
        group = self.groups.get(channel)
        if group is None:
            group = factory(channel)
            self.groups[channel] = group
            group.ready = asyncio.ensure_future(self._subscribe(group))
        group.idle_since = None
        await asyncio.shield(group.ready)  # type: ignore[arg-type]
        return group  # type: ignore[return-value]

    async def _subscribe(self, group: LocalGroup) -> None:
        try:
            await self.broker.subscribe(group.channel, group)
        except BaseException:
            if self.groups.get(group.channel) is group:
                del self.groups[group.channel]
            raise

    def release(self, group: LocalGroup, now: float) -> None:
        """Note that a member left; the sweep unsubscribes groups that stay empty."""
        if group.is_idle() and group.idle_since is None:
            group.idle_since = now

    async def sweep(self, now: float) -> int:
        """Unsubscribe groups idle for a while; returns how many."""
        stale = [
            g
            for g in self.groups.values()
            if g.is_idle()
            and g.idle_since is not None
            and now - g.idle_since >= IDLE_UNSUBSCRIBE_SECONDS
            and g.ready is not None
            and g.ready.done()
        ]
        for group in stale:
            del self.groups[group.channel]
            await self.broker.unsubscribe(group.channel)
        return len(stale)
