"""Validated names: rooms, tenants, user ids, room patterns.

One rule set, checked once at the edge (tokens, commands, HTTP bodies and paths), so
nothing odd reaches a Redis key, a set member or a sweep. User ids (a token's `sub`) may
hold any printable character, `/` included, but no control character: tabs separate
the fields of presence bookkeeping entries.

Rooms and tenants end up inside Redis key names and hash tags, so their
alphabets exclude `{`, `}`, whitespace and `*`; tenants also exclude `/`,
which separates tenant from room in every key (see `keys.py`), so two
tenants can never build the same key.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

ROOM_RE = r"^[A-Za-z0-9_\-.:@/=+#]{1,200}$"
TENANT_RE = r"^[A-Za-z0-9_\-.:@]{1,64}$"
DEFAULT_TENANT = "default"

RoomName = Annotated[str, StringConstraints(pattern=ROOM_RE)]
TenantName = Annotated[str, StringConstraints(pattern=TENANT_RE)]
USER_RE = r"^[^\x00-\x1f\x7f]{1,200}$"
UserId = Annotated[str, StringConstraints(pattern=USER_RE)]
MAX_STREAM_PART = 2**64 - 1  # each half of a Redis stream id is an unsigned 64-bit integer


def _fits_stream_id(value: str) -> str:
    # 20 digits pass the pattern but 99999999999999999999 is past 2**64 - 1: Redis answers
    # "Invalid stream ID" and the route that passed it on was a 500.
    if any(int(part) > MAX_STREAM_PART for part in value.split("-")):
        raise ValueError(f"offset parts are at most {MAX_STREAM_PART}")
    return value


OffsetStr = Annotated[str, StringConstraints(pattern=r"^\d{1,20}-\d{1,20}$"),
                      AfterValidator(_fits_stream_id)]

_room = re.compile(ROOM_RE)
_tenant = re.compile(TENANT_RE)
_user = re.compile(USER_RE)


def is_room(name: str) -> bool:
    return bool(_room.fullmatch(name))  # fullmatch: `$` alone lets a final \n through


def is_tenant(name: str) -> bool:
    return bool(_tenant.fullmatch(name))


def is_user_id(name: str) -> bool:
    return bool(_user.fullmatch(name))


def room_matches(room: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """True when `room` matches one of the token's room patterns.

    `*` matches any run of characters (including `:` and `/`); nothing else is
    special, so a `[` or `?` in a pattern means itself.
    """
    for pattern in patterns:
        if pattern == "*" or pattern == room:
            return True
        if "*" in pattern and fnmatchcase(room, _escape_all_but_star(pattern)):
            return True
    return False


def _escape_all_but_star(pattern: str) -> str:
    return "".join("[" + ch + "]" if ch in "?[]" else ch for ch in pattern)
