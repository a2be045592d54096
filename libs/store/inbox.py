"""A user's notifications inbox: kept, pushed, listed and marked read.

A notification is kept in the user's inbox stream and pushed to every connection
of the user in one step (inbox_notify.lua), with the unread count it makes; the
gateway (notifications from client sends and HTTP publishes) and the Redis
publisher write it here, the sessions service lists and acknowledges it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from goldwire.protocol.keys import Keys
from goldwire.store.lua import bind


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _offset(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


class Inbox:
    def __init__(self, redis: Redis, keys: Keys, inbox_size: int = 500,
                 inbox_retention_days: float = 30, idempotency_window: int = 300) -> None:
        self.redis = redis
        self.keys = keys
        self.inbox_size = inbox_size
        self.inbox_retention_ms = int(inbox_retention_days * 86400 * 1000)
        self.idempotency_ms = idempotency_window * 1000
        self._notify = bind(redis, __package__, "inbox_notify.lua")
        self._ack = bind(redis, __package__, "inbox_ack.lua")

    def _inbox_keys(self, tenant: str, user: str) -> list[str]:
        k = self.keys
        return [k.inbox(tenant, user), k.inbox_read(tenant, user),
                k.inbox_read_ids(tenant, user)]

    async def notify(self, tenant: str, user: str, data: dict[str, Any],
                     sender: dict[str, Any] | None = None,
                     idempotency_key: str | None = None) -> tuple[str, bool, int]:
        """Keep a notification in the inbox and push it to every connection of the user,
        in one step. Returns (notification id, was_duplicate, unread count); for a
        duplicate, the id is what `record_delivery` stored (JSON) or the first id."""
        inbox = self._inbox_keys(tenant, user)
        idem = (self.keys.inbox_idempotency(tenant, user, idempotency_key)
                if idempotency_key else inbox[0])
        tail = ((',"from":' + json.dumps(sender, separators=(",", ":")) if sender else "")
                + ',"data":' + json.dumps(data, separators=(",", ":")) + "}")
        now = int(time.time() * 1000)
        nid, dup, unread = await self._notify(
            inbox=inbox[0], read=inbox[1], read_ids=inbox[2], idempotency=idem,
            channel=self.keys.user_channel(tenant, user), head='{"type":"notification",',
            tail=tail, maxlen=self.inbox_size, min_id=now - self.inbox_retention_ms,
            ttl_ms=self.inbox_retention_ms,
            idempotency_ms=self.idempotency_ms if idempotency_key else 0)
        return _s(nid), bool(dup), int(unread)

    async def record_delivery(self, tenant: str, user: str, idempotency_key: str | None,
                              nid: str, delivered: int) -> None:
        """Remember how many connections the first publish reached, for its retries."""
        if idempotency_key:
            await self.redis.set(self.keys.inbox_idempotency(tenant, user, idempotency_key),
                                 json.dumps({"id": nid, "delivered": delivered}), xx=True,
                                 keepttl=True)

    @staticmethod
    def first_delivery(stored: str) -> int:
        """`delivered` of a duplicate's first publish (0 if it was not recorded)."""
        return int(json.loads(stored).get("delivered", 0)) if stored.startswith("{") else 0

    async def notifications(self, tenant: str, user: str, limit: int = 50,
                            before: str | None = None) -> dict[str, Any]:
        """Newest first, `limit` per page; `next` is the cursor of the following page."""
        inbox, read, read_ids = self._inbox_keys(tenant, user)
        pipe = self.redis.pipeline(transaction=False)
        if before is not None and _offset(before) == (0, 0):
            # Nothing is before 0-0, and Redis refuses the exclusive `(0-0` (it was a 500):
            # ask for exactly 0-0, which no entry of a stream can be.
            pipe.xrevrange(inbox, max="0-0", min="0-0", count=1)
        else:
            pipe.xrevrange(inbox, max=f"({before}" if before else "+", min="-",
                           count=limit + 1)
        pipe.hget(read, "upto")
        pipe.smembers(read_ids)
        entries, upto, ids = await pipe.execute()
        upto_offset = _offset(_s(upto)) if upto else (0, 0)
        read_set = {_s(i) for i in ids}
        items = []
        for raw_id, fields in entries[:limit]:
            nid = _s(raw_id)
            body = json.loads("{" + _s(fields[b"t"])[1:])
            items.append({"id": nid, "ts": int(nid.split("-")[0]), **body,
                          "read": _offset(nid) <= upto_offset or nid in read_set})
        unread = await self.unread(tenant, user)
        nxt = items[-1]["id"] if len(entries) > limit else None
        return {"items": items, "unread": unread, "next": nxt}

    async def unread(self, tenant: str, user: str) -> int:
        inbox, read, read_ids = self._inbox_keys(tenant, user)
        upto = await self.redis.hget(read, "upto")  # type: ignore[misc]
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrange(inbox, min=f"({_s(upto)}" if upto else "-", max="+")
        pipe.smembers(read_ids)
        entries, ids = await pipe.execute()
        read_set = {_s(i) for i in ids}
        return sum(1 for raw_id, _ in entries if _s(raw_id) not in read_set)

    async def ack(self, tenant: str, user: str, ids: list[str] | None = None,
                  upto: str | None = None) -> int:
        """Mark read (by ids, or everything up to an id); tells the user's other devices.
        Returns the unread count."""
        inbox, read, read_ids = self._inbox_keys(tenant, user)
        unread = await self._ack(inbox=inbox, read=read, read_ids=read_ids,
                                 channel=self.keys.user_channel(tenant, user), upto=upto or "",
                                 ids=ids or [])
        return int(unread)
