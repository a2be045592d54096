"""Bodies of the HTTP publish API (`POST /v1/publish`, `/v1/publish/batch`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from goldwire.protocol.depth import JsonObject
from goldwire.protocol.messages import MessageType
from goldwire.protocol.names import DEFAULT_TENANT, RoomName, TenantName, UserId


class PublishRequest(BaseModel):
    """One backend publish: to a room, to a user, or to everyone of a tenant."""

    model_config = ConfigDict(extra="forbid")

    room: RoomName | None = None
    user: UserId | None = None
    broadcast: bool = False
    tenant: TenantName = DEFAULT_TENANT
    type: MessageType = MessageType.SYSTEM_MESSAGE
    data: JsonObject = Field(default_factory=dict)
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    from_: dict[str, Any] | None = Field(default=None, alias="from")

    @model_validator(mode="after")
    def _exactly_one_target(self) -> PublishRequest:
        targets = sum((self.room is not None, self.user is not None, self.broadcast))
        if targets != 1:
            raise ValueError("give exactly one of 'room', 'user' or 'broadcast': true")
        if self.type in (MessageType.ERROR, MessageType.PRESENCE_UPDATE):
            raise ValueError(f"type {self.type.value!r} cannot be published")
        return self


class PublishResult(BaseModel):
    """`offset` for a room publish; `delivered` (gateways reached) otherwise."""

    offset: str | None = None
    delivered: int | None = None
    duplicate: bool = False


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[PublishRequest] = Field(min_length=1, max_length=1000)


class BatchResult(BaseModel):
    results: list[PublishResult]
