"""`/v2/sync/*`: a browser's own view of the services behind the gateway, with its JWT.

Each endpoint is the same three steps, kept as reusable pieces so later
`/v2/sync` endpoints are a few lines each:

1. `current_principal` (a dependency): the user JWT in `Authorization: Bearer`,
   checked exactly as a socket's `connect` is (401 when missing, malformed,
   expired or refused).
2. Authorization with the node's `RoomAuthorizer` (`authorized_rooms`): only
   rooms the token may join (403 naming the room).
3. `Forwarder.get`: the call to the owning service with the gateway's API key
   (the first of `API_KEYS`) and the principal's tenant, on one pooled
   `httpx.AsyncClient` opened in the app's lifespan. A service that refuses
   the connection, fails or does not answer within `SYNC_TIMEOUT` is a 503 —
   a request never hangs on a service that is down.

Errors are `SyncError`s (an `HTTPException`): the body is
`{"detail": {"code", "message", ...}}` with the `code` names of the socket
protocol's `error` frames (`unauthorized`, `forbidden`, `bad_request`,
`unavailable`, `internal`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from goldwire.gateway.auth import AuthError, Principal
from goldwire.gateway.authz import Action, AuthzUnavailable
from goldwire.gateway.node import GatewayNode
from goldwire.gateway.settings import GatewaySettings
from goldwire.protocol.codes import ErrorCode
from goldwire.protocol.depth import JsonObject
from goldwire.protocol.names import OffsetStr, is_room
from goldwire.protocol.sync import (
    BootstrapResponse,
    HistoryResponse,
    NotificationsResponse,
    Preferences,
    PresenceResponse,
    RevokeResponse,
    SessionsResponse,
    UnreadResponse,
)
from goldwire.service.http import bearer_token
from goldwire.service.logs import log_fields
from goldwire.service.request_id import HEADER as REQUEST_ID_HEADER

log = logging.getLogger("goldwire.gateway.sync")

router = APIRouter(prefix="/v2/sync")

MAX_ROOMS = 100  # rooms per request (the presence API's own limit)
OffsetText = OffsetStr  # both halves within Redis's u64, else Redis refuses it with a 500


class SyncError(HTTPException):
    """An error answer of a sync endpoint: `{"detail": {"code", "message", **extra}}`."""

    def __init__(self, status: int, code: ErrorCode, message: str, **extra: Any) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        super().__init__(status, {"code": code.value, "message": message, **extra}, headers)


class Forwarder:
    """The gateway's calls to the services behind `/v2/sync`, on one pooled client.

    Opened in the app's lifespan and closed with it. `transport` lets tests
    put an `httpx.MockTransport` in place of the network.
    """

    def __init__(self, settings: GatewaySettings,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        keys = settings.api_key_list()
        self.api_key = keys[0] if keys else None
        self.timeout = settings.sync_timeout
        self.urls = {"presence": settings.presence_url.rstrip("/"),
                     "sessions": settings.sessions_url.rstrip("/"),
                     "activity": settings.activity_url.rstrip("/")}
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 1.0)),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            transport=transport,
        )

    async def get(self, service: str, path: str, params: dict[str, str]) -> Any:
        """GET `path` of `service` and return its JSON, or raise `SyncError`."""
        return (await self.request("GET", service, path, params))[1]

    async def request(self, method: str, service: str, path: str, params: dict[str, str],
                      body: Any = None, passthrough: tuple[int, ...] = ()) -> tuple[int, Any]:
        """Call `service` and return (status, JSON), or raise `SyncError`.

        Statuses in `passthrough` (e.g. 409 with the current values) come back as
        answers instead of errors.

        503 `unavailable` when the service refuses the connection, times out or
        answers 5xx; 502 `internal` when it refuses the gateway's API key (a
        deployment error the user cannot fix); other 4xx pass through.
        """
        if self.api_key is None:
            raise SyncError(503, ErrorCode.UNAVAILABLE,
                            f"the gateway has no API key to call the {service} service with "
                            "(set API_KEYS)", service=service)
        url = self.urls[service] + path
        headers = {"Authorization": f"Bearer {self.api_key}"}
        request_id = log_fields().get("request_id")
        if request_id:  # the service logs the user's request under the same id
            headers[REQUEST_ID_HEADER] = request_id
        try:
            # httpx's timeouts are per phase; the outer one bounds the whole call.
            async with asyncio.timeout(self.timeout):
                resp = await self.client.request(method, url, params=params, headers=headers,
                                                 json=body)
        except (TimeoutError, httpx.TimeoutException):
            log.warning("%s service timed out on %s", service, path)
            raise SyncError(503, ErrorCode.UNAVAILABLE,
                            f"the {service} service did not answer within {self.timeout:g} s; "
                            "retry later", service=service) from None
        except httpx.HTTPError as exc:
            log.warning("%s service unreachable: %s", service, exc)
            raise SyncError(503, ErrorCode.UNAVAILABLE,
                            f"the {service} service is unavailable; retry later",
                            service=service) from None
        if resp.status_code >= 500:
            raise SyncError(503, ErrorCode.UNAVAILABLE,
                            f"the {service} service failed ({resp.status_code}); retry later",
                            service=service)
        if resp.status_code in (401, 403):
            log.error("%s service refused the gateway's API key", service)
            raise SyncError(502, ErrorCode.INTERNAL,
                            f"the {service} service refused the gateway's credentials",
                            service=service)
        try:
            answer = resp.json()
        except ValueError:
            raise SyncError(502, ErrorCode.INTERNAL,
                            f"the {service} service answered something that is not JSON",
                            service=service) from None
        if resp.status_code >= 400 and resp.status_code not in passthrough:
            detail = answer.get("detail") if isinstance(answer, dict) else None
            code = ErrorCode.NOT_FOUND if resp.status_code == 404 else ErrorCode.BAD_REQUEST
            raise SyncError(resp.status_code, code,
                            str(detail or f"the {service} service refused the request"),
                            service=service)
        return resp.status_code, answer

    async def aclose(self) -> None:
        await self.client.aclose()


# --- dependencies --------------------------------------------------------------------
# Coroutines, so FastAPI runs them on the loop rather than in its thread pool.
async def node_of(request: Request) -> GatewayNode:
    return request.state.node


async def forwarder_of(request: Request) -> Forwarder:
    return request.state.forwarder


async def current_principal(request: Request,
                            node: GatewayNode = Depends(node_of)) -> Principal:
    """The verified user behind `Authorization: Bearer <jwt>`, or 401."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise SyncError(401, ErrorCode.UNAUTHORIZED,
                        "missing token: send 'Authorization: Bearer <jwt>'")
    try:
        principal = node.verifier.verify(token)
    except AuthError as exc:
        raise SyncError(401, ErrorCode.UNAUTHORIZED, str(exc)) from None
    request.state.principal = principal  # for the api event the app records
    return principal


User = Annotated[Principal, Depends(current_principal)]
Node = Annotated[GatewayNode, Depends(node_of)]
Services = Annotated[Forwarder, Depends(forwarder_of)]


def parse_rooms(rooms: str, limit: int) -> list[str]:
    """`a,b,c` → distinct valid room names in the order given, or 400."""
    names = list(dict.fromkeys(r.strip() for r in rooms.split(",") if r.strip()))
    if not names:
        raise SyncError(400, ErrorCode.BAD_REQUEST,
                        "give the rooms as ?rooms=a,b (at least one)")
    if len(names) > limit:
        raise SyncError(400, ErrorCode.BAD_REQUEST, f"at most {limit} rooms per request")
    bad = [r for r in names if not is_room(r)]
    if bad:
        raise SyncError(400, ErrorCode.BAD_REQUEST, f"not a room name: {bad[0]!r}", room=bad[0])
    return names


async def authorized_rooms(node: GatewayNode, who: Principal, rooms: list[str],
                           action: Action = Action.JOIN) -> list[str]:
    """`rooms` when `who` may `action` every one of them; else 403 naming the first refused."""
    try:
        verdicts = await asyncio.gather(*(node.authorizer.allowed(who, r, action)
                                          for r in rooms))
    except AuthzUnavailable:
        raise SyncError(503, ErrorCode.UNAVAILABLE,
                        "room authorization is unavailable; retry later") from None
    refused = [room for room, ok in zip(rooms, verdicts, strict=True) if not ok]
    if refused:
        raise SyncError(403, ErrorCode.FORBIDDEN,
                        f"not allowed to {action.value} room {refused[0]!r}",
                        room=refused[0], rooms=refused)
    return rooms


# --- endpoints -----------------------------------------------------------------------
@router.get("/presence", response_model=PresenceResponse)
async def presence(who: User, node: Node, services: Services,
                   rooms: Annotated[str, Query()] = "") -> Any:
    """Members of each room the token may join: `{"rooms": {room: {"members", "version"}}}`.

    The tenant is the token's, never a parameter: a user sees their own tenant only.
    """
    names = parse_rooms(rooms, MAX_ROOMS)
    await authorized_rooms(node, who, names)
    return await services.get("presence", "/v1/presence/rooms",
                              {"rooms": ",".join(names), "tenant": who.tenant})


# --- sessions, preferences, notifications (the sessions service) -----------------------
def _user_path(who: Principal, rest: str) -> str:
    return f"/v1/users/{quote(who.user_id, safe='')}{rest}"


def _session_of(request: Request) -> str:
    """The caller's own session id: `X-Goldwire-Session` header or `session_id` query."""
    return request.headers.get("x-goldwire-session") or request.query_params.get("session_id", "")


class PreferencesWrite(BaseModel):
    values: JsonObject
    version: int = Field(ge=0)


class NotificationsAck(BaseModel):
    ids: list[OffsetText] = Field(default_factory=list, max_length=500)
    upto: OffsetText | None = None


@router.get("/bootstrap", response_model=BootstrapResponse)
async def bootstrap(request: Request, who: User, node: Node, services: Services,
                    rooms: Annotated[str, Query()] = "") -> Any:
    """Everything a page needs at load: user, session, preferences, unread count, presence
    of the rooms asked for. One call per service, made concurrently (never one per room)."""
    names = parse_rooms(rooms, MAX_ROOMS) if rooms else []
    if names:
        await authorized_rooms(node, who, names)
    params = {"tenant": who.tenant, "session": _session_of(request)}
    calls = [services.get("sessions", _user_path(who, "/bootstrap"), params)]
    if names:
        calls.append(services.get("presence", "/v1/presence/rooms",
                                  {"rooms": ",".join(names), "tenant": who.tenant}))
    answers = await asyncio.gather(*calls)
    return {"user": who.public(), "tenant": who.tenant, **answers[0],
            "presence": answers[1]["rooms"] if names else {}}


@router.get("/rooms/{room}/history", response_model=HistoryResponse,
            response_model_exclude_none=True)
async def history(room: str, who: User, node: Node,
                  since: Annotated[OffsetStr | None, Query()] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """What the socket's recovery would give: with `since`, the messages after it (or
    `recovered: false`); without, the latest `limit` messages. Oldest first."""
    (name,) = parse_rooms(room, 1)
    await authorized_rooms(node, who, [name])
    if since is not None:
        found = await node.broker.read_room(who.tenant, name, since)
        frames = [frame for _, frame in found.entries][:limit]
        return {"room": name, "offset": found.latest.decode(), "recovered": found.recovered,
                "messages": [json.loads(f) for f in frames],
                "complete": len(found.entries) <= limit}
    latest, frames = await node.broker.recent_room(who.tenant, name, limit)
    return {"room": name, "offset": latest, "messages": [json.loads(f) for f in frames]}


@router.get("/preferences", response_model=Preferences)
async def get_preferences(who: User, services: Services) -> Any:
    return await services.get("sessions", _user_path(who, "/preferences"),
                              {"tenant": who.tenant})


@router.put("/preferences", response_model=Preferences,
            responses={409: {"model": Preferences, "description": "stale version"}})
async def put_preferences(body: PreferencesWrite, who: User, services: Services) -> Any:
    """Write based on `version`; 409 with the current values when someone wrote first."""
    status, answer = await services.request(
        "PUT", "sessions", _user_path(who, "/preferences"), {"tenant": who.tenant},
        body=body.model_dump(), passthrough=(409, 422))
    if status != 200:
        return JSONResponse(answer, status_code=status)
    return answer


@router.get("/notifications", response_model=NotificationsResponse)
async def notifications(who: User, services: Services,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50,
                        before: Annotated[OffsetStr | None, Query()] = None) -> Any:
    params = {"tenant": who.tenant, "limit": str(limit)}
    if before:
        params["before"] = before
    return await services.get("sessions", _user_path(who, "/notifications"), params)


@router.post("/notifications/ack", response_model=UnreadResponse)
async def ack_notifications(body: NotificationsAck, who: User, services: Services) -> Any:
    if not body.ids and not body.upto:
        raise SyncError(400, ErrorCode.BAD_REQUEST, "give `ids` or `upto`")
    return (await services.request("POST", "sessions", _user_path(who, "/notifications/ack"),
                                   {"tenant": who.tenant}, body=body.model_dump()))[1]


@router.get("/sessions", response_model=SessionsResponse)
async def list_sessions(request: Request, who: User, services: Services) -> Any:
    return await services.get("sessions", _user_path(who, "/sessions"),
                              {"tenant": who.tenant, "current": _session_of(request)})


@router.delete("/sessions/{sid}", response_model=RevokeResponse)
async def revoke_session(sid: Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,128}$")],
                         who: User, services: Services) -> Any:
    """Revoke one of the caller's own sessions: its sockets close with 4010 everywhere."""
    return (await services.request("DELETE", "sessions",
                                   _user_path(who, f"/sessions/{sid}"),
                                   {"tenant": who.tenant}))[1]


@router.get("/activity")
async def own_activity(who: User, services: Services,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50,
                       cursor: Annotated[str | None, Query(max_length=200)] = None) -> Any:
    """The caller's own recent activity (the activity service)."""
    params = {"tenant": who.tenant, "limit": str(limit)}
    if cursor:
        params["cursor"] = cursor
    return await services.get("activity", f"/v1/activity/users/{quote(who.user_id, safe='')}",
                              params)
