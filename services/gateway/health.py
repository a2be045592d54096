"""The gateway's readiness: its own checks (`/readyz`) and the deep answer
(`/readyz?deep=1`): those, every service's `/readyz` and the event stream's
consumer groups, in one JSON document for an operator or `goldwire status`.

Why one shared check and a cache: the gateway is the public face and the
services are not; one deep check costs an HTTP call to each service and an
XINFO GROUPS, so at most one runs at a time per gateway, every caller that
comes while it runs waits for that one, and every caller within CACHE_SECONDS
of its end gets its answer. A flood of deep checks reaches each service
about once a second, whatever its size.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from goldwire.store.partitions import group_table

if TYPE_CHECKING:
    from goldwire.gateway.node import GatewayNode

DEEP_TIMEOUT = 2.0  # seconds for one service's /readyz, connect to last byte
CACHE_SECONDS = 1.0

Answer = dict[str, Any]

READYZ_DESCRIPTION = """\
Plain: this gateway's own readiness (`pubsub` connected, `redis` answers), for a load
balancer; it never calls another process.

`?deep=1`: one answer for the whole stack, for an operator (`goldwire status` prints it):
`gateway` (the checks above and the node id), `services` (each of presence, sessions and
activity: its own `/readyz` checks, or `error` when it does not answer within 2 s) and
`stream` (per consumer group of the event stream: `lag`, entries not yet delivered,
null when Redis cannot tell; `pending`, delivered but not acknowledged; `consumers`).
`ready` is true, and the status 200, only when the gateway and every service are ready.
The deep answer is computed at most once a second per gateway, however many ask.
"""

READYZ_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Ready (and, with `deep`, every service is ready)"},
    503: {"description": "Not ready: the answer says which check or service failed"},
}


async def gateway_checks(node: GatewayNode) -> dict[str, bool]:
    """The gateway's own readiness: its pub/sub connection is up and Redis answers."""
    checks = {"pubsub": node.broker.connected}
    try:
        await node.broker.redis.ping()
        checks["redis"] = True
    except Exception:
        checks["redis"] = False
    return checks


class DeepHealth:
    """The deep readiness answer of one gateway, computed at most once per
    `cache_seconds` and never twice at the same time."""

    def __init__(self, node: GatewayNode, client: httpx.AsyncClient, urls: Mapping[str, str],
                 timeout: float = DEEP_TIMEOUT, cache_seconds: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.client = client  # the Forwarder's pooled client: no second pool to close
        self.urls = dict(urls)
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._running: asyncio.Task[Answer] | None = None
        self._answer: Answer | None = None
        self._at = 0.0

    async def answer(self) -> Answer:
        if self._answer is not None and self._clock() - self._at < self.cache_seconds:
            return self._answer
        if self._running is None:
            self._running = asyncio.create_task(self._refresh())
        # Shielded: a caller that gives up (its client went away) does not cancel the
        # check the others wait for, so coming and going cannot start one check each.
        return await asyncio.shield(self._running)

    async def aclose(self) -> None:
        """Cancel a check still running (the gateway is stopping)."""
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)

    async def _refresh(self) -> Answer:
        try:
            answer = await self._check()
            self._answer, self._at = answer, self._clock()
            return answer
        finally:
            self._running = None

    async def _check(self) -> Answer:
        names = list(self.urls)
        own, stream, *answers = await asyncio.gather(
            gateway_checks(self.node), self._stream(), *(self._service(n) for n in names))
        services = dict(zip(names, answers, strict=True))
        own_ready = all(own.values())
        return {"ready": own_ready and all(s["ready"] for s in services.values()),
                "gateway": {"ready": own_ready, "checks": own, "node": self.node.node_id},
                "services": services, "stream": stream}

    async def _service(self, name: str) -> Answer:
        """The service's own /readyz answer, or why there is none."""
        try:
            # httpx's timeouts are per phase; the outer one bounds the whole call.
            async with asyncio.timeout(self.timeout):
                resp = await self.client.get(self.urls[name].rstrip("/") + "/readyz")
        except (TimeoutError, httpx.TimeoutException):
            return {"ready": False, "error": f"no answer within {self.timeout:g} s"}
        except httpx.HTTPError as exc:
            return {"ready": False, "error": f"unreachable: {exc or type(exc).__name__}"}
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return {"ready": False, "error": f"answered {resp.status_code} without readiness"}
        ready = resp.status_code == 200 and body.get("ready") is True
        return {"ready": ready, "checks": body.get("checks", {})}

    async def _stream(self) -> Answer:
        """Lag (entries not yet delivered, Redis >= 7; null when Redis cannot tell),
        pending (delivered, not acknowledged) and consumers of every group, over every
        partition of the event stream (lag and pending add up; consumers is the most
        any partition has), named by service when the group is `<prefix>:<service>`."""
        count = self.node.event_streams.count
        try:
            groups = await group_table(self.node.broker.redis, self.node.event_streams.all())
        except Exception as exc:  # no partition yet (no service started), or Redis down
            return {"partitions": count, "groups": {}, "error": str(exc) or type(exc).__name__}
        mine = self.node.keys.consumer_group("")
        table = {name.removeprefix(mine): row for name, row in groups.items()}
        return {"partitions": count, "groups": table}

