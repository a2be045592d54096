"""arq jobs of the presence service: the dead-gateway sweep, pending leaves, webhooks.

Cron jobs are unique per tick across replicas (arq's default for cron), so
several replicas sweep once, not once each.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
from arq import Retry

from goldwire.presence.events import GatewayEvent
from goldwire.presence.notify import signed_headers
from goldwire.service.sweep import SWEEP_SEQ, sweep_dead_gateways

log = logging.getLogger("goldwire.presence.jobs")



def parse_node_conn(member: str) -> tuple[str, str, str] | None:
    """`<tenant>\t<user>\t<conn>` → its parts. Tenants and connection ids never hold a
    tab; a user id from before ids were checked at the edge might, so it takes the rest."""
    tenant, _, rest = member.partition("\t")
    user, _, conn = rest.rpartition("\t")
    if not tenant or not user or not conn:
        return None
    return tenant, user, conn


async def sweep_dead_nodes(ctx: dict[str, Any]) -> int:
    """Remove the connections of gateways whose liveness key expired; returns how many."""
    service = ctx["service"]
    redis, keys = service.redis, service.keys
    nodes = [n.decode() for n in await redis.smembers(keys.presence_nodes())]

    async def end(dead: list[str]) -> int:
        removed = 0
        for node in dead:
            removed += await _end_node(service, node)
        return removed

    removed = await sweep_dead_gateways(redis, keys, nodes, end)
    service.stats["sweeps"] += 1
    return removed


async def _end_node(service: Any, node: str) -> int:
    """Every connection presence holds for the dead gateway `node` disconnects at once."""
    redis, keys = service.redis, service.keys
    members = [m.decode(errors="replace")
               for m in await redis.smembers(keys.presence_node_conns(node))]
    events = []
    for member in members:
        parsed = parse_node_conn(member)
        if parsed is None:  # one bad entry must not keep the rest of the node's ghosts
            log.warning("sweep of %s: skipped a malformed entry %r", node, member[:200])
            continue
        tenant, user, conn = parsed
        events.append(GatewayEvent(kind="disconnect", node=node, conn=conn, seq=SWEEP_SEQ,
                                   tenant=tenant, user=user, ts=service.now_ms()))
    # No grace for the dead: their users are gone from every view at once.
    changes = await service.engine.apply(events, grace_ms=0)
    await service.publish(changes)
    # Their connections no longer count against MAX_CONNECTIONS_PER_USER either.
    users = {(e.tenant, e.user) for e in events}
    if users:
        pipe = redis.pipeline(transaction=False)
        for tenant, user in users:
            pipe.hdel(keys.user_nodes(tenant, user), node)
        await pipe.execute()
    await redis.delete(keys.presence_node_conns(node))
    await redis.srem(keys.presence_nodes(), node)
    service.stats["ghosts_removed"] += len(members)
    log.info("swept dead gateway %s: %d connections", node, len(members))
    return len(members)


async def expire_pending_leaves(ctx: dict[str, Any]) -> int:
    service = ctx["service"]
    changes = await service.engine.expire_due()
    await service.publish(changes)
    return len(changes)


async def deliver_webhook(ctx: dict[str, Any], body: str) -> None:
    """POST one change; arq retries with growing delays until `max_tries`."""
    service = ctx["service"]
    settings = service.settings
    data = body.encode()
    headers = signed_headers(settings.presence_webhook_secret, data, time.time())
    start = time.perf_counter()
    try:
        resp = await service.http.post(settings.presence_webhook_url, content=data,
                                       headers=headers)
        ok = resp.status_code < 300
    except httpx.HTTPError as exc:
        log.warning("webhook failed: %s", exc)
        ok = False
    metrics = service.metrics
    (metrics.webhook_ok if ok else metrics.webhook_failed).observe(time.perf_counter() - start)
    if not ok:
        service.stats["webhook_failures"] += 1
        tries = ctx.get("job_try", 1)
        raise Retry(defer=min(0.2 * 2 ** tries, 30))
    service.stats["webhooks_delivered"] += 1
