"""The sessions HTTP API (API key): a user's sessions and preferences.

The gateway serves the browser's side of it under `/v2/sync/` with the user's
JWT and calls these routes with its API key and the token's tenant and user.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field, StringConstraints

from goldwire.protocol.names import DEFAULT_TENANT, TenantName
from goldwire.sessions.service import SessionsService
from goldwire.sessions.settings import SessionsSettings
from goldwire.sessions.store import InvalidValue, PreferencesConflict

Tenant = Annotated[TenantName, Query()]


OffsetId = Annotated[str, StringConstraints(pattern=r"^\d{1,20}-\d{1,20}$")]


class AckBody(BaseModel):
    """Mark read: these ids, and/or everything up to and including `upto`."""

    ids: list[OffsetId] = Field(default_factory=list, max_length=500)
    upto: OffsetId | None = None


class PreferencesBody(BaseModel):
    values: dict[str, Any]
    version: int = Field(ge=0)


def service_of(request: Request) -> SessionsService:
    return request.state.service


def require_api_key(request: Request, service: SessionsService = Depends(service_of)) -> None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(key.encode(), k.encode())
            for k in service.settings.api_key_set()):
        raise HTTPException(401, "missing or unknown API key")


def create_app(settings: SessionsSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, SessionsService]]:
        service = SessionsService(settings)
        await service.start()
        try:
            yield {"service": service}
        finally:
            await service.stop()

    app = FastAPI(title="Goldwire sessions", version="1", lifespan=lifespan)
    auth = [Depends(require_api_key)]

    @app.get("/v1/users/{user}/sessions", dependencies=auth)
    async def list_sessions(user: str, tenant: Tenant = DEFAULT_TENANT, current: str = "",
                            service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        sessions = await service.store.list_sessions(tenant, user)
        for s in sessions:
            s["current"] = s["id"] == current
        return {"sessions": sessions}

    @app.delete("/v1/users/{user}/sessions/{sid}", dependencies=auth)
    async def revoke_session(user: str, sid: str, tenant: Tenant = DEFAULT_TENANT,
                             service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        if not await service.revoke(tenant, user, sid):
            raise HTTPException(404, f"no live session {sid!r} for this user")
        return {"revoked": sid}

    @app.get("/v1/users/{user}/bootstrap", dependencies=auth)
    async def bootstrap(user: str, tenant: Tenant = DEFAULT_TENANT, session: str = "",
                        service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        """What a page needs from this service at load, in one call."""
        store = service.store
        values, version = await store.read_prefs(tenant, user)
        return {
            "session": await store.session_info(tenant, user, session) if session else None,
            "preferences": {"values": values, "version": version},
            "unread": await store.unread(tenant, user),
        }

    @app.get("/v1/users/{user}/preferences", dependencies=auth)
    async def get_preferences(user: str, tenant: Tenant = DEFAULT_TENANT,
                              service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        values, version = await service.store.read_prefs(tenant, user)
        return {"values": values, "version": version}

    @app.put("/v1/users/{user}/preferences", dependencies=auth)
    async def put_preferences(user: str, body: PreferencesBody, tenant: Tenant = DEFAULT_TENANT,
                              service: SessionsService = Depends(service_of)) -> JSONResponse:
        try:
            version = await service.store.write_prefs(tenant, user, body.values, body.version)
        except PreferencesConflict as exc:
            return JSONResponse({"values": exc.values, "version": exc.version,
                                 "detail": str(exc)}, status_code=409)
        except InvalidValue as exc:
            raise HTTPException(422, str(exc)) from None
        return JSONResponse({"values": body.values, "version": version})

    @app.get("/v1/users/{user}/notifications", dependencies=auth)
    async def notifications(user: str, tenant: Tenant = DEFAULT_TENANT,
                            limit: Annotated[int, Query(ge=1, le=200)] = 50,
                            before: Annotated[str | None, Query(pattern=r"^\d+-\d+$")] = None,
                            service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        return await service.store.notifications(tenant, user, limit, before)

    @app.post("/v1/users/{user}/notifications/ack", dependencies=auth)
    async def ack(user: str, body: AckBody, tenant: Tenant = DEFAULT_TENANT,
                  service: SessionsService = Depends(service_of)) -> dict[str, Any]:
        if not body.ids and not body.upto:
            raise HTTPException(422, "give `ids` or `upto`")
        return {"unread": await service.store.ack(tenant, user, body.ids, body.upto)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(service: SessionsService = Depends(service_of)) -> JSONResponse:
        checks = {"consumer": service.running()}
        try:
            await service.redis.ping()
            checks["redis"] = True
        except Exception:
            checks["redis"] = False
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics(service: SessionsService = Depends(service_of)) -> PlainTextResponse:
        st = service.consumer.stats
        values = {"events_handled_total": service.stats["events_handled"],
                  "events_skipped_total": service.stats["events_skipped"],
                  "sessions_expired_total": service.stats["sessions_expired"],
                  "job_runner_restarts_total": service.stats["job_runner_restarts"],
                  "stream_claimed_total": st.claimed, "stream_failures_total": st.failures}
        lines = []
        for name, value in values.items():
            full = f"goldwire_sessions_{name}"
            lines += [f"# TYPE {full} counter", f"{full} {value}"]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    return app
