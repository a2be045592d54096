"""`POST /v1/publish` and `/v1/publish/batch`: how backend services publish.

Room publishes take the same path as a client's (one atomic script, offsets
and order shared); user and broadcast publishes are de-duplicated by a
`SET NX` on the idempotency key, which holds the first result for the window.
"""

from __future__ import annotations

import hmac
import json

from fastapi import APIRouter, Depends, HTTPException, Request
from redis.exceptions import RedisError

from goldwire.gateway.node import GatewayNode
from goldwire.protocol.http import BatchRequest, BatchResult, PublishRequest, PublishResult

router = APIRouter()


def node_of(request: Request) -> GatewayNode:
    return request.state.node


def require_api_key(request: Request, node: GatewayNode = Depends(node_of)) -> None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>'")
    if not any(hmac.compare_digest(key.encode(), k.encode())
               for k in node.settings.api_key_set()):
        raise HTTPException(401, "unknown API key")


async def publish_one(node: GatewayNode, req: PublishRequest) -> PublishResult:
    sender = req.from_
    if req.room is not None:
        offset, dup = await node.publish_room(req.tenant, req.room, req.type.value, req.data,
                                              sender=sender, idempotency_key=req.idempotency_key)
        node.outbox.event("publish", None, tenant=req.tenant, room=req.room,
                          type=req.type.value, offset=offset, source="api")
        return PublishResult(offset=offset, duplicate=dup)
    redis = node.broker.redis
    idem_key = None
    if req.idempotency_key:
        idem_key = node.keys.idempotency(req.tenant, req.idempotency_key)
        window = node.settings.idempotency_window * 1000
        if not await redis.set(idem_key, "{}", nx=True, px=window):
            first = await redis.get(idem_key)
            return PublishResult(**json.loads(first or "{}"), duplicate=True)
    try:
        if req.user is not None:
            delivered = await node.send_to_user(req.tenant, req.user, req.type.value, req.data,
                                                sender=sender)
        else:
            delivered = await node.broadcast(req.tenant, req.type.value, req.data, sender=sender)
    except BaseException:
        if idem_key:
            await redis.delete(idem_key)
        raise
    result = PublishResult(delivered=delivered)
    if idem_key:
        await redis.set(idem_key, result.model_dump_json(exclude={"duplicate"}), xx=True,
                        keepttl=True)
    node.outbox.event("publish", None, tenant=req.tenant, user=req.user,
                      type=req.type.value, source="api")
    return result


@router.post("/v1/publish", response_model=PublishResult, response_model_exclude_none=True,
             dependencies=[Depends(require_api_key)])
async def publish(req: PublishRequest, node: GatewayNode = Depends(node_of)) -> PublishResult:
    try:
        return await publish_one(node, req)
    except (RedisError, OSError) as exc:
        raise HTTPException(503, "storage unavailable; retry with the same key") from exc


@router.post("/v1/publish/batch", response_model=BatchResult, response_model_exclude_none=True,
             dependencies=[Depends(require_api_key)])
async def publish_batch(batch: BatchRequest, node: GatewayNode = Depends(node_of)) -> BatchResult:
    try:
        return BatchResult(results=[await publish_one(node, item) for item in batch.items])
    except (RedisError, OSError) as exc:
        raise HTTPException(503, "storage unavailable; retry with the same keys") from exc
