"""The presence HTTP API (API key): room members, one user's status, many rooms at once."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from goldwire.presence.service import PresenceService
from goldwire.presence.settings import PresenceSettings
from goldwire.protocol.names import DEFAULT_TENANT, TenantName, is_room

Tenant = Annotated[TenantName, Query()]
MAX_ROOMS = 100


def service_of(request: Request) -> PresenceService:
    return request.state.service


def require_api_key(request: Request, service: PresenceService = Depends(service_of)) -> None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(key.encode(), k.encode())
            for k in service.settings.api_key_set()):
        raise HTTPException(401, "missing or unknown API key")


def _rooms(rooms: str) -> list[str]:
    names = [r for r in rooms.split(",") if r]
    if not names or len(names) > MAX_ROOMS:
        raise HTTPException(422, f"give 1 to {MAX_ROOMS} comma-separated rooms")
    bad = [r for r in names if not is_room(r)]
    if bad:
        raise HTTPException(422, f"not a room name: {bad[0]!r}")
    return names


def create_app(settings: PresenceSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, PresenceService]]:
        service = PresenceService(settings)
        await service.start()
        try:
            yield {"service": service}
        finally:
            await service.stop()

    app = FastAPI(title="Goldwire presence", version="1", lifespan=lifespan)
    auth = [Depends(require_api_key)]

    @app.get("/v1/presence/rooms", dependencies=auth)
    async def many_rooms(rooms: str, tenant: Tenant = DEFAULT_TENANT,
                         service: PresenceService = Depends(service_of)) -> dict[str, Any]:
        return {"rooms": await service.engine.room_members(tenant, _rooms(rooms))}

    @app.get("/v1/presence/rooms/{room}", dependencies=auth)
    async def one_room(room: str, tenant: Tenant = DEFAULT_TENANT,
                       service: PresenceService = Depends(service_of)) -> dict[str, Any]:
        (name,) = _rooms(room)
        return {"room": name, **(await service.engine.room_members(tenant, [name]))[name]}

    @app.get("/v1/presence/users/{user}", dependencies=auth)
    async def one_user(user: str, tenant: Tenant = DEFAULT_TENANT,
                       service: PresenceService = Depends(service_of)) -> dict[str, Any]:
        return await service.engine.user_status(tenant, user)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(service: PresenceService = Depends(service_of)) -> JSONResponse:
        checks: dict[str, Any] = {"consumer": service.running()}
        try:
            await service.redis.ping()
            checks["redis"] = True
            lag = await service.consumer.lag()
            checks["lag_ok"] = lag <= service.settings.presence_ready_max_lag
        except Exception:
            checks["redis"] = False
        ready = all(checks.values()) and len(checks) == 3
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics(service: PresenceService = Depends(service_of)) -> PlainTextResponse:
        try:
            await service.consumer.lag()
        except Exception:
            pass  # the last known lag is still worth reporting
        st = service.consumer.stats
        values = {
            "events_handled_total": service.stats["events_handled"],
            "changes_published_total": service.stats["changes_published"],
            "sweeps_total": service.stats["sweeps"],
            "ghosts_removed_total": service.stats["ghosts_removed"],
            "events_skipped_total": service.stats["events_skipped"],
            "job_runner_restarts_total": service.stats["job_runner_restarts"],
            "webhooks_delivered_total": service.stats["webhooks_delivered"],
            "webhook_failures_total": service.stats["webhook_failures"],
            "stream_claimed_total": st.claimed,
            "stream_failures_total": st.failures,
            "stream_lag": st.lag,
        }
        lines = []
        for name, value in values.items():
            kind = "counter" if name.endswith("_total") else "gauge"
            full = f"goldwire_presence_{name}"
            lines += [f"# TYPE {full} {kind}", f"{full} {value}"]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    return app
