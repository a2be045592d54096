"""Room authorization: token claims first, then an optional backend callback, cached.

The callback (`AUTHZ_URL`) gets `POST {"user", "tenant", "room", "action"}`
and answers `{"allow": true|false}`; answers are cached for
`AUTHZ_CACHE_SECONDS`. A callback that fails, times out or answers 5xx
refuses with `unavailable` (not cached) rather than letting anyone in.
"""

from __future__ import annotations

import time
from enum import StrEnum

import httpx

from goldwire.gateway.auth import Principal
from goldwire.gateway.settings import GatewaySettings
from goldwire.protocol.names import room_matches

CACHE_MAX = 100_000


class Action(StrEnum):
    JOIN = "join"
    PUBLISH = "publish"


class AuthzUnavailable(Exception):
    """The backend authorization callback did not answer."""


class RoomAuthorizer:
    def __init__(self, settings: GatewaySettings) -> None:
        self._url = settings.authz_url
        self._ttl = settings.authz_cache_seconds
        self._client = httpx.AsyncClient(timeout=settings.authz_timeout) if self._url else None
        self._cache: dict[tuple[str, str, str, str], tuple[bool, float]] = {}

    async def allowed(self, who: Principal, room: str, action: Action) -> bool:
        patterns = who.rooms if action is Action.JOIN else who.publish
        if room_matches(room, patterns):
            return True
        if self._client is None:
            return False
        key = (who.tenant, who.user_id, room, action.value)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            resp = await self._client.post(
                self._url,  # type: ignore[arg-type]
                json={"user": who.user_id, "tenant": who.tenant, "room": room,
                      "action": action.value},
            )
            if resp.status_code >= 500:
                raise AuthzUnavailable(f"callback answered {resp.status_code}")
            allow = resp.status_code == 200 and resp.json().get("allow") is True
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthzUnavailable(str(exc)) from None
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[key] = (allow, now + self._ttl)
        return allow

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
