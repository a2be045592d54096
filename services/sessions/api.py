"""The sessions HTTP API (API key): a user's sessions and preferences.

The gateway serves the browser's side of it under `/v2/sync/` with the user's
JWT and calls these routes with its API key and the token's tenant and user.

User ids may hold `/`, so `{user:path}` takes everything up to the route's fixed tail
(the match is greedy: `/v1/users/a/sessions/sessions` is user `a/sessions`); the
gateway sends the id `%2F`-encoded, which arrives decoded and matches the same way.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from goldwire.protocol.names import DEFAULT_TENANT, MAX_STREAM_PART, OffsetStr, TenantName, UserId
from goldwire.service import (
    add_health_routes,
    ascii_validation_errors,
    document_error_details,
)
from goldwire.service.base import require_api_key, service_app
from goldwire.sessions.service import SessionsService
from goldwire.sessions.settings import SessionsSettings
from goldwire.store.sessions import InvalidValue, PreferencesConflict

Tenant = Annotated[TenantName, Query()]
User = Annotated[UserId, Path()]


OffsetId = OffsetStr  # both halves within Redis's u64: past it Redis refuses the id (a 500)


class AckBody(BaseModel):
    """Mark read: these ids, and/or everything up to and including `upto`."""

    ids: list[OffsetId] = Field(default_factory=list, max_length=500)
    upto: OffsetId | None = None

    @field_validator("upto")
    @classmethod
    def _below_the_last_id(cls, value: str | None) -> str | None:
        # The read mark is read back as the exclusive start `(upto`, which Redis cannot
        # step past the last possible id: it was stored, then every list and count of the
        # user's notifications was a 500 for good.
        if value is not None and value == f"{MAX_STREAM_PART}-{MAX_STREAM_PART}":
            raise ValueError("upto cannot be the last possible stream id")
        return value


class PreferencesBody(BaseModel):
    values: dict[str, Any]
    version: int = Field(ge=0)


def service_of(request: Request) -> SessionsService:
    return request.state.service




def create_app(settings: SessionsSettings) -> FastAPI:
    app = service_app("Goldwire sessions", lambda: SessionsService(settings))
    auth = [Depends(require_api_key)]

    @app.get("/v1/users/{user:path}/sessions", dependencies=auth)
    async def list_sessions(user: User, tenant: Tenant = DEFAULT_TENANT, current: str = "",
                            service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        sessions = await service.store.list_sessions(tenant, user)
        for s in sessions:
            s["current"] = s["id"] == current
        return {"sessions": sessions}

    @app.delete("/v1/users/{user:path}/sessions/{sid}", dependencies=auth)
    async def revoke_session(user: User, sid: str, tenant: Tenant = DEFAULT_TENANT,
                             service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        if not await service.revoke(tenant, user, sid):
            raise HTTPException(404, f"no live session {sid!r} for this user")
        return {"revoked": sid}

    @app.get("/v1/users/{user:path}/bootstrap", dependencies=auth)
    async def bootstrap(user: User, tenant: Tenant = DEFAULT_TENANT, session: str = "",
                        service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        """What a page needs from this service at load, in one call."""
        store = service.store
        values, version = await store.read_prefs(tenant, user)
        return {
            "session": await store.session_info(tenant, user, session) if session else None,
            "preferences": {"values": values, "version": version},
            "unread": await service.inbox.unread(tenant, user),
        }

    @app.get("/v1/users/{user:path}/preferences", dependencies=auth)
    async def get_preferences(user: User, tenant: Tenant = DEFAULT_TENANT,
                              service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        values, version = await service.store.read_prefs(tenant, user)
        return {"values": values, "version": version}

    @app.put("/v1/users/{user:path}/preferences", dependencies=auth)
    async def put_preferences(user: User, body: PreferencesBody, tenant: Tenant = DEFAULT_TENANT,
                              service: SessionsService = Depends(service_of)) -> JSONResponse:
        try:
            version = await service.store.write_prefs(tenant, user, body.values, body.version)
        except PreferencesConflict as exc:
            return JSONResponse({"values": exc.values, "version": exc.version,
                                 "detail": str(exc)}, status_code=409)
        except InvalidValue as exc:
            raise HTTPException(422, str(exc)) from None
        return JSONResponse({"values": body.values, "version": version})

    @app.get("/v1/users/{user:path}/notifications", dependencies=auth)
    async def notifications(user: User, tenant: Tenant = DEFAULT_TENANT,
                            limit: Annotated[int, Query(ge=1, le=200)] = 50,
                            before: Annotated[OffsetStr | None, Query()] = None,
                            service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        return await service.inbox.notifications(tenant, user, limit, before)

    @app.post("/v1/users/{user:path}/notifications/ack", dependencies=auth)
    async def ack(user: User, body: AckBody, tenant: Tenant = DEFAULT_TENANT,
                  service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        if not body.ids and not body.upto:
            raise HTTPException(422, "give `ids` or `upto`")
        return {"unread": await service.inbox.ack(tenant, user, body.ids, body.upto)}

    async def checks(request: Request) -> dict[str, bool]:
        service: SessionsService = request.state.service
        await service.redis.ping()
        return {"consumer": service.running(), "redis": True}

    async def metrics(request: Request) -> bytes:
        service: SessionsService = service_of(request)
        with contextlib.suppress(Exception):
            await service.consumer.lag()  # the last known lag is still worth reporting
        return service.metrics.render()

    add_health_routes(app, checks, metrics, alive=lambda request: service_of(request).running())
    document_error_details(app)
    ascii_validation_errors(app)
    return app
