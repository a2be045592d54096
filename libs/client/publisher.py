"""How backend services publish: one small interface, two interchangeable backends.

`Publisher` has three abstract methods (`publish`, `publish_batch`,
`aclose`); everything else — `publish_room`, `send_to_user`, `broadcast` and
the seed's convenience methods — is written once here on top of them, so the
backends cannot drift apart in what they send.

- `HttpPublisher` (publisher_http.py) posts to the gateway's `/v1/publish`:
  the usual choice, it needs only an API key.
- `RedisPublisher` (publisher_redis.py) writes to Redis the way the gateway
  does: for services that sit next to Redis and should not depend on a
  gateway being up.

Every publish is validated with the contract's own `PublishRequest` before it
leaves, so both backends refuse the same bad input with the same error
(`PublishRejected`, status 422). A publish without an idempotency key gets a
fresh one here, which is what makes the backends' retries deliver once.

`open_publisher(url)` picks the backend from the URL scheme.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic import ValidationError

from goldwire.client.errors import PublishRejected
from goldwire.protocol.http import PublishRequest, PublishResult
from goldwire.protocol.names import DEFAULT_TENANT

if TYPE_CHECKING:
    from goldwire.client.publisher_http import HttpPublisher
    from goldwire.client.publisher_redis import RedisPublisher

Sender: TypeAlias = str | Mapping[str, Any]
"""Who a message is from: a user id, or `{"id": ..., "name": ...}` (the frame's `from`)."""

BatchItem: TypeAlias = PublishRequest | Mapping[str, Any]
"""One batch entry: a `PublishRequest` or a dict in its wire shape (`"from"`, not `from_`)."""


def new_idempotency_key() -> str:
    """A fresh key for a publish the caller gave none (random: unique across processes)."""
    return uuid.uuid4().hex


def sender_ref(sender: Sender | None) -> dict[str, Any] | None:
    """`"u1"` → `{"id": "u1"}`; a mapping is passed on as a plain dict."""
    if sender is None:
        return None
    if isinstance(sender, str):
        return {"id": sender}
    return dict(sender)


def prepare(item: BatchItem) -> PublishRequest:
    """Validate one publish against the contract and make sure it has an idempotency key.

    Raises PublishRejected (status 422) with pydantic's explanation when the
    gateway would refuse it anyway.
    """
    try:
        req = item if isinstance(item, PublishRequest) else PublishRequest.model_validate(item)
    except ValidationError as exc:
        raise PublishRejected(422, str(exc)) from None
    if req.idempotency_key is None:
        req = req.model_copy(update={"idempotency_key": new_idempotency_key()})
    return req


class Publisher(ABC):
    """Publish to rooms, users and tenants; every method is safe to retry with its key."""

    # --- what a backend implements -------------------------------------------------
    @abstractmethod
    async def publish(self, request: PublishRequest) -> PublishResult:
        """Publish one prepared request (see `prepare`) and return the gateway's result."""

    @abstractmethod
    async def publish_batch(self, items: Sequence[BatchItem]) -> list[PublishResult]:
        """Publish several, in order; one result per item (`duplicate` set on repeats)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the backend's connections."""

    # --- written once for every backend ----------------------------------------------
    async def publish_room(
        self,
        room: str,
        type: str,
        data: Mapping[str, Any],
        tenant: str = DEFAULT_TENANT,
        idempotency_key: str | None = None,
        sender: Sender | None = None,
    ) -> str:
        """Publish to a room; returns its offset (the first one when the key was seen before)."""
        result = await self.publish(prepare({
            "room": room, "type": type, "data": dict(data), "tenant": tenant,
            "idempotency_key": idempotency_key, "from": sender_ref(sender),
        }))
        assert result.offset is not None, "a room publish always has an offset"
        return result.offset

    async def send_to_user(
        self,
        user: str,
        data: Mapping[str, Any],
        type: str = "notification",
        tenant: str = DEFAULT_TENANT,
        idempotency_key: str | None = None,
        sender: Sender | None = None,
    ) -> PublishResult:
        """Deliver to every connection of `user`; `delivered` is how many connections that is."""
        return await self.publish(prepare({
            "user": user, "type": type, "data": dict(data), "tenant": tenant,
            "idempotency_key": idempotency_key, "from": sender_ref(sender),
        }))

    async def broadcast(
        self,
        data: Mapping[str, Any],
        type: str = "system_message",
        tenant: str = DEFAULT_TENANT,
        idempotency_key: str | None = None,
        sender: Sender | None = None,
    ) -> PublishResult:
        """Deliver to every connection of `tenant`; `delivered` is how many gateways it reached."""
        return await self.publish(prepare({
            "broadcast": True, "type": type, "data": dict(data), "tenant": tenant,
            "idempotency_key": idempotency_key, "from": sender_ref(sender),
        }))

    # --- the seed's convenience methods ---------------------------------------------------
    async def document_updated(
        self,
        document_id: str | int,
        changes: Mapping[str, Any],
        by: Sender | None = None,
        tenant: str = DEFAULT_TENANT,
        idempotency_key: str | None = None,
    ) -> str:
        """`document_update` to room `doc:<id>`; `by` becomes the frame's `from`."""
        return await self.publish_room(
            f"doc:{document_id}", "document_update",
            {"document_id": str(document_id), "changes": dict(changes)},
            tenant=tenant, idempotency_key=idempotency_key, sender=by,
        )

    async def user_notified(
        self,
        user_id: str,
        title: str,
        body: str,
        link: str | None = None,
        tenant: str = DEFAULT_TENANT,
        idempotency_key: str | None = None,
    ) -> PublishResult:
        """A `notification` to every connection of `user_id`."""
        data: dict[str, Any] = {"title": title, "body": body}
        if link is not None:
            data["link"] = link
        return await self.send_to_user(user_id, data, type="notification", tenant=tenant,
                                       idempotency_key=idempotency_key)

    async def comment_added(
        self,
        document_id: str | int,
        comment_id: str | int,
        author: Sender,
        text: str,
        tenant: str = DEFAULT_TENANT,
        idempotency_key: str | None = None,
    ) -> str:
        """A `user_message` of kind `comment` to room `doc:<id>`; `author` becomes `from`."""
        return await self.publish_room(
            f"doc:{document_id}", "user_message",
            {"kind": "comment", "document_id": str(document_id),
             "comment_id": str(comment_id), "text": text},
            tenant=tenant, idempotency_key=idempotency_key, sender=author,
        )

    # --- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def open_publisher(url: str, api_key: str | None = None, **options: Any) -> Publisher:
    """The backend for `url`: http(s):// → HttpPublisher (needs `api_key`), redis(s):// or
    unix:// → RedisPublisher. `options` go to the backend's constructor."""
    scheme = url.partition("://")[0].lower()
    if scheme in ("http", "https"):
        from goldwire.client.publisher_http import HttpPublisher

        if not api_key:
            raise ValueError("an HTTP publisher needs an API key")
        return HttpPublisher(url, api_key, **options)
    if scheme in ("redis", "rediss", "unix"):
        from goldwire.client.publisher_redis import RedisPublisher

        return RedisPublisher(url, **options)
    raise ValueError(f"no publisher for URL scheme {scheme!r}: use http(s):// or redis(s)://")


def __getattr__(name: str) -> Any:
    # The backends live in their own modules (one file per backend) and import
    # this one, so a plain re-export here would be circular; resolving them on
    # first access keeps `from goldwire.client.publisher import HttpPublisher` working.
    if name == "HttpPublisher":
        from goldwire.client.publisher_http import HttpPublisher

        return HttpPublisher
    if name == "RedisPublisher":
        from goldwire.client.publisher_redis import RedisPublisher

        return RedisPublisher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BatchItem", "HttpPublisher", "Publisher", "RedisPublisher", "Sender",
    "new_idempotency_key", "open_publisher", "prepare", "sender_ref",
]
