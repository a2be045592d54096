"""The activity HTTP API (API key): histories, analytics summaries, live stats.

Bad parameters are 422 with `{"detail": "<param>: <what is wrong>"}`; times are
milliseconds since the epoch or ISO 8601 (a time without a zone is UTC). User ids and
room names may hold `/` (`{name:path}`); `/users/a/summary` is user `a`'s summary, so
the history of a user whose id ends in `/summary` is asked with the id's `/` sent as
`%2F` (`/users/a%2Fsummary`), which the raw path tells apart.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from goldwire.activity.events import KINDS
from goldwire.activity.queries import DAY_MS, CursorError, history_page
from goldwire.activity.service import ActivityService
from goldwire.activity.settings import ActivitySettings
from goldwire.protocol.messages import MessageType
from goldwire.protocol.names import DEFAULT_TENANT, TenantName, UserId, is_room
from goldwire.service import (
    add_health_routes,
    document_error_details,
)
from goldwire.service.base import require_api_key, service_app

Tenant = Annotated[TenantName, Query(description="the tenant (default `default`)")]
Limit = Annotated[int, Query(ge=1, le=200)]
TYPES = frozenset(KINDS | {t.value for t in MessageType})
MAX_WINDOW_DAYS = 400


def service_of(request: Request) -> ActivityService:
    return request.state.service




def bad(message: str) -> HTTPException:
    return HTTPException(422, message)


def parse_time(name: str, value: str | None) -> int | None:
    """Milliseconds since the epoch, or ISO 8601 (naive = UTC); else 422."""
    if value is None or value == "":
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        ms = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise bad(f"{name}: expected milliseconds since the epoch or an ISO 8601 time, "
                      f"got {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ms = int(moment.timestamp() * 1000)
    if not 0 <= ms < 10**14:
        raise bad(f"{name}: {value!r} is out of range")
    return ms


def parse_types(value: str | None) -> frozenset[str] | None:
    if not value:
        return None
    names = frozenset(t.strip() for t in value.split(",") if t.strip())
    unknown = sorted(names - TYPES)
    if unknown:
        raise bad(f"type: unknown {unknown[0]!r}; known: {', '.join(sorted(TYPES))}")
    return names or None


def time_range(since: str | None, until: str | None, names: tuple[str, str]) -> tuple[
        int | None, int | None]:
    lo, hi = parse_time(names[0], since), parse_time(names[1], until)
    if lo is not None and hi is not None and lo > hi:
        raise bad(f"{names[0]} is after {names[1]}")
    return lo, hi


def _raw_path(request: Request) -> bytes:
    """The path as sent, `%2F` still encoded (uvicorn gives it; else the decoded one)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return raw.split(b"?", 1)[0]


def _limit(value: str | None) -> int:
    if value is None:
        return 50
    if not value.isdigit() or not 1 <= int(value) <= 200:
        raise bad("limit: expected a whole number from 1 to 200")
    return int(value)


def window(start: str | None, end: str | None, default_ms: int) -> tuple[int, int]:
    lo, hi = time_range(start, end, ("from", "to"))
    hi = int(time.time() * 1000) if hi is None else hi
    lo = hi - default_ms if lo is None else lo
    if lo >= hi:
        raise bad("from must be before to")
    if hi - lo > MAX_WINDOW_DAYS * DAY_MS:
        raise bad(f"the window from..to is longer than {MAX_WINDOW_DAYS} days")
    return lo, hi


def create_app(settings: ActivitySettings) -> FastAPI:
    app = service_app("Goldwire activity", lambda: ActivityService(settings))
    auth = [Depends(require_api_key)]

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    async def page(service: ActivityService, key: str, type_: str | None, since: str | None,
                   until: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
        types = parse_types(type_)
        lo, hi = time_range(since, until, ("since", "until"))
        try:
            items, nxt = await history_page(service.redis, key, types=types, since=lo,
                                            until=hi, cursor=cursor or None, limit=limit)
        except CursorError as exc:
            raise bad(str(exc)) from None
        return {"items": items, "next": nxt}

    @app.get("/v1/activity/users/{user:path}/summary", dependencies=auth)
    async def user_summary(request: Request, user: Annotated[UserId, Path()],
                           tenant: Tenant = DEFAULT_TENANT,
                           from_: Annotated[str | None, Query(alias="from")] = None,
                           to: str | None = None,
                           service: ActivityService = Depends(service_of)) -> dict[str, Any]:
        """Last active, rooms visited, time in rooms, messages sent (whole UTC days)."""
        if not _raw_path(request).endswith(b"/summary"):  # `.../a%2Fsummary`: a history
            q = request.query_params
            return await user_history(f"{user}/summary", tenant, q.get("type"),
                                      q.get("since"), q.get("until"), q.get("cursor"),
                                      _limit(q.get("limit")), service)
        lo, hi = window(from_, to, 30 * DAY_MS)
        return await service.analytics.user_summary(tenant, user, lo, hi)

    @app.get("/v1/activity/users/{user:path}", dependencies=auth)
    async def user_history(user: Annotated[UserId, Path()], tenant: Tenant = DEFAULT_TENANT,
                           type: str | None = None, since: str | None = None,
                           until: str | None = None, cursor: str | None = None,
                           limit: Limit = 50,
                           service: ActivityService = Depends(service_of)) -> dict[str, Any]:
        """The user's activity, newest first: `{"items": [...], "next": cursor | null}`."""
        key = service.keys.activity(tenant, "user_history", user)
        return await page(service, key, type, since, until, cursor, limit)

    @app.get("/v1/activity/rooms/{room:path}", dependencies=auth)
    async def room_history(room: str, tenant: Tenant = DEFAULT_TENANT,
                           type: str | None = None, since: str | None = None,
                           until: str | None = None, cursor: str | None = None,
                           limit: Limit = 50,
                           service: ActivityService = Depends(service_of)) -> dict[str, Any]:
        """The room's activity, newest first: `{"items": [...], "next": cursor | null}`."""
        if not is_room(room):
            raise bad(f"room: not a room name: {room!r}")
        key = service.keys.activity(tenant, "room_history", room)
        return await page(service, key, type, since, until, cursor, limit)

    @app.get("/v1/analytics/summary", dependencies=auth)
    async def summary(tenant: Tenant = DEFAULT_TENANT,
                      from_: Annotated[str | None, Query(alias="from")] = None,
                      to: str | None = None, room: str | None = None,
                      top: Annotated[int, Query(ge=1, le=100)] = 10,
                      service: ActivityService = Depends(service_of)) -> dict[str, Any]:
        """Counts, messages by type, top rooms, distinct active users and a series
        (hourly up to 48 h, else daily) over [from, to), widened to whole hours;
        `from` defaults to 24 h before `to`, `to` to now."""
        if room is not None and not is_room(room):
            raise bad(f"room: not a room name: {room!r}")
        lo, hi = window(from_, to, DAY_MS)
        return await service.analytics.summary(tenant, lo, hi, top=top, room=room)

    @app.get("/v1/analytics/minutes", dependencies=auth)
    async def minutes(tenant: Tenant = DEFAULT_TENANT,
                      from_: Annotated[str | None, Query(alias="from")] = None,
                      to: str | None = None, room: str | None = None,
                      service: ActivityService = Depends(service_of)) -> dict[str, Any]:
        """Messages per minute (and per type, and for one room) over [from, to): the
        last three hours of the window at most; `from` defaults to an hour before `to`."""
        if room is not None and not is_room(room):
            raise bad(f"room: not a room name: {room!r}")
        lo, hi = window(from_, to, 3_600_000)
        return await service.analytics.minutes(tenant, lo, hi, room)

    @app.get("/v1/analytics/live", dependencies=auth)
    async def live(tenant: Tenant = DEFAULT_TENANT,
                   service: ActivityService = Depends(service_of)) -> dict[str, Any]:
        """Connections, members per room, messages per second over the last minute."""
        return await service.analytics.live(tenant)

    async def checks(request: Request) -> dict[str, bool]:
        service = service_of(request)
        await service.redis.ping()
        lag = await service.consumer.lag()
        return {"consumer": service.running(), "redis": True,
                "lag_ok": lag <= service.settings.activity_ready_max_lag}

    async def metrics(request: Request) -> bytes:
        service: ActivityService = service_of(request)
        with contextlib.suppress(Exception):
            await service.consumer.lag()  # the last known lag is still worth reporting
        return service.metrics.render()

    add_health_routes(app, checks, metrics, alive=lambda request: service_of(request).running())
    document_error_details(app)
    return app
