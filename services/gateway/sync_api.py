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
import logging
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request

from goldwire.gateway.auth import AuthError, Principal
from goldwire.gateway.authz import Action, AuthzUnavailable
from goldwire.gateway.node import GatewayNode
from goldwire.gateway.settings import GatewaySettings
from goldwire.protocol.codes import ErrorCode
from goldwire.protocol.names import is_room

log = logging.getLogger("goldwire.gateway.sync")

router = APIRouter(prefix="/v2/sync")

MAX_ROOMS = 100  # rooms per request (the presence API's own limit)


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
        self.urls = {"presence": settings.presence_url.rstrip("/")}
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 1.0)),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            transport=transport,
        )

    async def get(self, service: str, path: str, params: dict[str, str]) -> Any:
        """GET `path` of `service` and return its JSON, or raise `SyncError`.

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
        try:
            # httpx's timeouts are per phase; the outer one bounds the whole call.
            async with asyncio.timeout(self.timeout):
                resp = await self.client.get(url, params=params, headers=headers)
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
            body = resp.json()
        except ValueError:
            raise SyncError(502, ErrorCode.INTERNAL,
                            f"the {service} service answered something that is not JSON",
                            service=service) from None
        if resp.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            raise SyncError(resp.status_code, ErrorCode.BAD_REQUEST,
                            str(detail or f"the {service} service refused the request"),
                            service=service)
        return body

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
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SyncError(401, ErrorCode.UNAUTHORIZED,
                        "missing token: send 'Authorization: Bearer <jwt>'")
    try:
        return node.verifier.verify(token.strip())
    except AuthError as exc:
        raise SyncError(401, ErrorCode.UNAUTHORIZED, str(exc)) from None


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
@router.get("/presence")
async def presence(who: User, node: Node, services: Services,
                   rooms: Annotated[str, Query()] = "") -> Any:
    """Members of each room the token may join: `{"rooms": {room: {"members", "version"}}}`.

    The tenant is the token's, never a parameter: a user sees their own tenant only.
    """
    names = parse_rooms(rooms, MAX_ROOMS)
    await authorized_rooms(node, who, names)
    return await services.get("presence", "/v1/presence/rooms",
                              {"rooms": ",".join(names), "tenant": who.tenant})
