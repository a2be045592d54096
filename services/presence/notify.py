"""Presence changes for backends: a bounded stream, and an optional signed webhook.

The stream `<prefix>:presence:events` is for other services to consume. When
`PRESENCE_WEBHOOK_URL` is set, each change also becomes an arq job that POSTs
it (HMAC-SHA256 of the body in `X-Goldwire-Signature: sha256=<hex>`), retried
with backoff by arq: a slow or failing receiver never holds up the event stream.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict
from typing import Any

from arq.connections import ArqRedis

from goldwire.presence.engine import PresenceChange

WEBHOOK_JOB = "deliver_webhook"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def change_body(change: PresenceChange) -> dict[str, Any]:
    return {k: v for k, v in asdict(change).items() if v != ""}


async def publish_changes(arq: ArqRedis, stream: str, maxlen: int,
                          changes: list[PresenceChange], queue: str,
                          webhook: bool) -> None:
    if not changes:
        return
    pipe = arq.pipeline(transaction=False)
    for change in changes:
        pipe.xadd(stream, {k: str(v) for k, v in change_body(change).items()},
                  maxlen=maxlen, approximate=True)
    await pipe.execute()
    if webhook:
        for change in changes:
            await arq.enqueue_job(WEBHOOK_JOB, json.dumps(change_body(change)),
                                  _queue_name=queue)
