"""Error codes and close codes: one typed table each.

Close codes say, as data, whether a client should reconnect, so SDKs and the
gateway read the same table instead of guessing (like centrifuge's
`disconnect.go`). 4000–4099 are Goldwire's own; 1000–1011 are RFC 6455's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum


class ErrorCode(StrEnum):
    """`data.code` of an `error` message."""

    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class Reconnect(Enum):
    """What a client should do after a close."""

    NO = "no"
    AT_ONCE = "at_once"
    WITH_BACKOFF = "with_backoff"
    WITH_NEW_TOKEN = "with_new_token"


class CloseCode(IntEnum):
    """WebSocket close codes the gateway sends."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INTERNAL_ERROR = 1011
    TOO_LARGE = 1009
    PROTOCOL_VIOLATION = 4000
    UNAUTHORIZED = 4001
    FORBIDDEN = 4003
    RATE_LIMITED = 4008
    SLOW_CONSUMER = 4009
    SESSION_REVOKED = 4010
    DISCONNECTED = 4011
    DRAINING = 4012
    TOO_MANY_CONNECTIONS = 4029


@dataclass(frozen=True, slots=True)
class CloseInfo:
    """A close code's meaning and what the client should do about it."""

    code: CloseCode
    meaning: str
    reconnect: Reconnect
    recover: bool  # rejoin rooms with `since` after reconnecting


CLOSE_TABLE: dict[CloseCode, CloseInfo] = {
    info.code: info
    for info in (
        CloseInfo(CloseCode.NORMAL, "normal", Reconnect.NO, False),
        CloseInfo(CloseCode.GOING_AWAY, "going away", Reconnect.WITH_BACKOFF, True),
        CloseInfo(CloseCode.INTERNAL_ERROR, "internal error", Reconnect.WITH_BACKOFF, True),
        CloseInfo(CloseCode.TOO_LARGE, "frame too large", Reconnect.NO, False),
        CloseInfo(
            CloseCode.PROTOCOL_VIOLATION,
            "protocol violation (bad frame before or instead of connect)",
            Reconnect.NO,
            False,
        ),
        CloseInfo(
            CloseCode.UNAUTHORIZED,
            "unauthorized (bad, expired or missing token; auth timeout)",
            Reconnect.WITH_NEW_TOKEN,
            True,
        ),
        CloseInfo(CloseCode.FORBIDDEN, "forbidden", Reconnect.NO, False),
        CloseInfo(CloseCode.RATE_LIMITED, "rate limited (flood)", Reconnect.WITH_BACKOFF, True),
        CloseInfo(
            CloseCode.SLOW_CONSUMER, "slow consumer (outbound queue full)", Reconnect.AT_ONCE, True
        ),
        CloseInfo(CloseCode.SESSION_REVOKED, "session revoked", Reconnect.NO, False),
        CloseInfo(CloseCode.DISCONNECTED, "disconnected by an operator", Reconnect.NO, False),
        CloseInfo(CloseCode.DRAINING, "server draining", Reconnect.AT_ONCE, True),
        CloseInfo(
            CloseCode.TOO_MANY_CONNECTIONS, "too many connections for this user", Reconnect.NO,
            False,
        ),
    )
}
