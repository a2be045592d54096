"""`POST /v1/publish` and `/v1/publish/batch`: how backend services publish.

Room publishes take the same path as a client's (one atomic script, offsets
and order shared); user and broadcast publishes are de-duplicated by a
claim on the idempotency key made in the same script as the PUBLISH, which
then holds the first result for the window.

PUBLISH_RATE_PER_TENANT is checked before anything is published: every
message of a batch counts, against the bucket of its own tenant, and a batch
is taken whole or refused whole (429 with `Retry-After`; tokens already taken
for its other tenants are given back).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from fastapi import APIRouter, Depends, HTTPException, Request

from goldwire.gateway.node import GatewayNode
from goldwire.protocol.http import BatchRequest, BatchResult, PublishRequest, PublishResult
from goldwire.service.http import bearer_token, known_key
from goldwire.service.tracing import span
from goldwire.store.connect import STORE_ERRORS

router = APIRouter()


def node_of(request: Request) -> GatewayNode:
    return request.state.node


def require_api_key(request: Request, node: GatewayNode = Depends(node_of)) -> None:
    key = bearer_token(request.headers.get("authorization"))
    if key is None:
        raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>'")
    if not known_key(key, node.settings.api_key_set()):
        raise HTTPException(401, "unknown API key")


async def take_rate(node: GatewayNode, items: Sequence[PublishRequest]) -> None:
    """Take one token per message from each tenant's bucket, or raise 429 (nothing taken)."""
    limiter = node.publish_limiter
    if not limiter.enabled:
        return
    taken: list[tuple[str, int]] = []
    try:
        for tenant, count in Counter(item.tenant for item in items).items():
            key = node.keys.publish_rate(tenant)
            if count > limiter.burst:
                raise HTTPException(413, {"code": "too_large", "message": (
                    f"{count} publishes for tenant {tenant!r} in one batch; "
                    f"PUBLISH_RATE_BURST is {limiter.burst}: split the batch")})
            verdict = await limiter.take(key, count)
            if not verdict.allowed:
                node.metrics.publishes_rate_limited += count
                raise HTTPException(429, {"code": "rate_limited", "message": (
                    f"tenant {tenant!r} is over PUBLISH_RATE_PER_TENANT "
                    f"({limiter.rate:g}/s, burst {limiter.burst}); retry after "
                    f"{verdict.retry_after} s"), "retry_after": verdict.retry_after},
                    headers={"Retry-After": str(verdict.retry_after)})
            taken.append((key, count))
    except HTTPException:
        for key, count in taken:
            await limiter.refund(key, count)
        raise


async def publish_one(node: GatewayNode, req: PublishRequest) -> PublishResult:
    """One publish, through the same node operations a socket command uses."""
    type_, sender, key = req.type.value, req.from_, req.idempotency_key
    with span("goldwire.publish", {"goldwire.tenant": req.tenant, "goldwire.room": req.room,
                                   "goldwire.user": req.user, "goldwire.type": type_}) as traced:
        if req.room is not None:
            offset, dup = await node.publish_room(req.tenant, req.room, type_, req.data,
                                                  sender=sender, idempotency_key=key)
            result = PublishResult(offset=offset, duplicate=dup)
        elif req.user is not None:
            delivered, dup = await node.send_to_user(req.tenant, req.user, type_, req.data,
                                                     sender=sender, idempotency_key=key)
            result = PublishResult(delivered=delivered, duplicate=dup)
        else:
            delivered, dup = await node.broadcast(req.tenant, type_, req.data, sender=sender,
                                                  idempotency_key=key)
            result = PublishResult(delivered=delivered, duplicate=dup)
        if traced is not None:
            traced.set_attribute("goldwire.duplicate", dup)
            if result.offset is not None:
                traced.set_attribute("goldwire.offset", result.offset)
    if not dup:  # a retry is one publish, for analytics too
        node.outbox.event("publish", None, tenant=req.tenant, room=req.room, to=req.user,
                          type=type_, offset=result.offset, source="api")
    return result


@router.post("/v1/publish", response_model=PublishResult, response_model_exclude_none=True,
             dependencies=[Depends(require_api_key)])
async def publish(req: PublishRequest, node: GatewayNode = Depends(node_of)) -> PublishResult:
    try:
        await take_rate(node, [req])
        return await publish_one(node, req)
    except STORE_ERRORS as exc:
        raise HTTPException(503, "storage unavailable; retry with the same key") from exc


@router.post("/v1/publish/batch", response_model=BatchResult, response_model_exclude_none=True,
             dependencies=[Depends(require_api_key)])
async def publish_batch(batch: list[PublishRequest] | BatchRequest,
                        node: GatewayNode = Depends(node_of)) -> BatchResult:
    """A list of publishes (or `{"items": [...]}`), applied in order."""
    items = batch.items if isinstance(batch, BatchRequest) else batch
    if not 1 <= len(items) <= 1000:
        raise HTTPException(422, "a batch holds 1 to 1000 publishes")
    for item in items:  # all or nothing: refuse an oversized item before publishing any
        node.check_size(len(json.dumps(item.data, separators=(",", ":"))))
    try:
        await take_rate(node, items)
        return BatchResult(results=[await publish_one(node, item) for item in items])
    except STORE_ERRORS as exc:
        raise HTTPException(503, "storage unavailable; retry with the same keys") from exc
