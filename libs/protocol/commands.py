"""Client → server commands of protocol v1, and the one function that parses them.

`parse_command` turns a raw frame into a typed command or raises `BadFrame`
with a message precise enough to fix the client by (which field, what was
wrong), and the frame's `ref` when it had one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from goldwire.protocol.depth import TooDeep, loads_bounded
from goldwire.protocol.errors import BadFrame
from goldwire.protocol.names import OffsetStr, RoomName, UserId

Ref = StrictInt | Annotated[str, StringConstraints(max_length=64)]


class _Command(BaseModel):
    # Unknown fields are ignored, not refused: a newer client may send optional
    # fields an older gateway does not know yet (the contract only grows).
    model_config = ConfigDict(extra="ignore", frozen=True)

    ref: Ref | None = None


class RoomJoin(BaseModel):
    """A room to join, with the last offset the client saw there."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    room: RoomName
    since: OffsetStr | None = None


class Connect(_Command):
    """First frame: authenticate, resume a session, join rooms at once."""

    op: Literal["connect"]
    token: Annotated[str, StringConstraints(max_length=16384)] | None = None
    session_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,128}$")] | None = None
    rooms: list[RoomJoin] = Field(default_factory=list, max_length=1000)


class Join(_Command):
    op: Literal["join"]
    room: RoomName
    since: OffsetStr | None = None


class Leave(_Command):
    op: Literal["leave"]
    room: RoomName


class Publish(_Command):
    op: Literal["publish"]
    room: RoomName
    type: Literal["user_message", "document_update"]
    data: dict[str, Any]


class Send(_Command):
    op: Literal["send"]
    user: UserId
    data: dict[str, Any]


class Status(_Command):
    op: Literal["status"]
    status: Literal["online", "away", "busy"]
    meta: dict[str, Any] | None = None


class Ping(_Command):
    op: Literal["ping"]


class Session(_Command):
    op: Literal["session"]
    state: dict[str, Any]


class Prefs(_Command):
    op: Literal["prefs"]
    values: dict[str, Any]
    version: Annotated[int, Field(ge=0)]


class Refresh(_Command):
    """A new token for the same user and tenant, before the current one expires."""

    op: Literal["refresh"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=16384)]


Command = Annotated[
    Connect | Join | Leave | Publish | Send | Status | Ping | Session | Prefs | Refresh,
    Field(discriminator="op"),
]
COMMAND_TYPES: tuple[type[_Command], ...] = (
    Connect, Join, Leave, Publish, Send, Status, Ping, Session, Prefs, Refresh,
)
OPS: frozenset[str] = frozenset(
    t.model_fields["op"].annotation.__args__[0]  # type: ignore[union-attr]
    for t in COMMAND_TYPES
)

_command_adapter: TypeAdapter[Any] = TypeAdapter(Command)


def parse_command(frame: str | bytes) -> Any:
    """Parse one text frame into a typed command.

    Raises BadFrame (code `bad_request`) for non-JSON, a non-object, a missing
    or unknown `op`, and fields of the wrong shape; `.ref` is set when the
    frame carried a usable one, so the error reply can echo it.
    """
    try:
        obj = loads_bounded(frame)
    except TooDeep as exc:
        # No ref: finding it would mean parsing what was just refused for its shape.
        raise BadFrame(f"frame is {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadFrame(f"frame is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadFrame(f"frame must be a JSON object, got {type(obj).__name__}")
    ref = obj.get("ref")
    if not _usable_ref(ref):
        raise BadFrame("ref must be a string of at most 64 characters or an integer")
    op = obj.get("op")
    if op is None:
        raise BadFrame("missing field 'op'", ref=ref)
    if not isinstance(op, str) or op not in OPS:
        raise BadFrame(f"unknown op {op!r}; expected one of {sorted(OPS)}", ref=ref)
    try:
        return _command_adapter.validate_python(obj)
    except ValidationError as exc:
        raise BadFrame(describe_validation_error(exc), ref=ref) from None


def _usable_ref(ref: object) -> bool:
    if ref is None:
        return True
    if isinstance(ref, bool):
        return False
    return isinstance(ref, int) or (isinstance(ref, str) and len(ref) <= 64)


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: `field 'room': String should match pattern ...`."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        # Drop the discriminator tag pydantic prepends (`join.room` -> `room`).
        if loc and loc[0] in OPS:
            loc = loc[1:]
        where = ".".join(loc) or "frame"
        parts.append(f"field '{where}': {err['msg']}")
    return "; ".join(parts)
