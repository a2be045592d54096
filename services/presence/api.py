"""The presence HTTP API (API key): room members, one user's status, many rooms at once.

Room names and user ids may hold `/` (`doc:a/b`), so the path routes take the rest of
the path (`{name:path}`); a `%2F` arrives decoded, so both spellings work.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request

from goldwire.presence.service import PresenceService
from goldwire.presence.settings import PresenceSettings
from goldwire.protocol.names import DEFAULT_TENANT, TenantName, UserId, is_room
from goldwire.service import (
    add_health_routes,
    ascii_validation_errors,
    document_error_details,
)
from goldwire.service.base import require_api_key, service_app

Tenant = Annotated[TenantName, Query()]
MAX_ROOMS = 100


def service_of(request: Request) -> PresenceService:
    return request.state.service




def _rooms(rooms: str) -> list[str]:
    names = [r for r in rooms.split(",") if r]
    if not names or len(names) > MAX_ROOMS:
        raise HTTPException(422, f"give 1 to {MAX_ROOMS} comma-separated rooms")
    bad = [r for r in names if not is_room(r)]
    if bad:
        raise HTTPException(422, f"not a room name: {bad[0]!r}")
    return names


def create_app(settings: PresenceSettings) -> FastAPI:
    app = service_app("Goldwire presence", lambda: PresenceService(settings))
    auth = [Depends(require_api_key)]

    @app.get("/v1/presence/rooms", dependencies=auth)
    async def many_rooms(rooms: str, tenant: Tenant = DEFAULT_TENANT,
                         service: PresenceService = Depends(service_of)) -> dict[str, Any]:
        return {"rooms": await service.engine.room_members(tenant, _rooms(rooms))}

    @app.get("/v1/presence/rooms/{room:path}", dependencies=auth)
    async def one_room(room: str, tenant: Tenant = DEFAULT_TENANT,
                       service: PresenceService = Depends(service_of)) -> dict[str, Any]:
        if not is_room(room):  # checked whole: a comma here is not a list
            raise HTTPException(422, f"not a room name: {room!r}")
        return {"room": room, **(await service.engine.room_members(tenant, [room]))[room]}

    @app.get("/v1/presence/users/{user:path}", dependencies=auth)
    async def one_user(user: Annotated[UserId, Path()], tenant: Tenant = DEFAULT_TENANT,
                       service: PresenceService = Depends(service_of)) -> dict[str, Any]:
        return await service.engine.user_status(tenant, user)

    async def checks(request: Request) -> dict[str, bool]:
        service: PresenceService = request.state.service
        await service.redis.ping()
        lag = await service.consumer.lag()
        return {"consumer": service.running(), "redis": True,
                "lag_ok": lag <= service.settings.presence_ready_max_lag}

    async def metrics(request: Request) -> bytes:
        service: PresenceService = request.state.service
        with contextlib.suppress(Exception):
            await service.consumer.lag()  # the last known lag is still worth reporting
        return service.metrics.render()

    add_health_routes(app, checks, metrics, alive=lambda request: service_of(request).running())
    document_error_details(app)
    ascii_validation_errors(app)
    return app
