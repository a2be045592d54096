"""A room's presence state as clients are sent it, built from what Redis stores.

The presence service keeps each member's view (`pm`, user → member JSON) and,
until its next flush publishes a diff, each changed user's view as observers
last saw it (`pd`, user → view, b'' = not a member). A gateway reads both with
the room's version in one MULTI and sends `state_frame(...)`: the stored views
with the unpublished changes taken back are exactly the room at that version,
so the diffs that follow apply to it. Reading `pm` alone could catch a batch
halfway (a user who joins and leaves in one batch is in `pm` for a moment, and
no diff would ever remove them: a ghost). Pure data, no I/O.
"""

from __future__ import annotations

import json


def published_members(members: dict[bytes, bytes], pending: dict[bytes, bytes]) -> list[bytes]:
    """The member views at the room's published version, in user id order."""
    views = dict(members)
    for user, before in pending.items():
        if before:
            views[user] = before
        else:
            views.pop(user, None)
    return [views[user] for user in sorted(views)]


def state_frame(room: str, version: int, members: list[bytes]) -> bytes:
    """The `presence_update` of kind `state`, joining the stored member JSON as is."""
    return (b'{"type":"presence_update","room":' + json.dumps(room).encode()
            + b',"data":{"kind":"state","version":' + str(version).encode()
            + b',"members":[' + b",".join(members) + b"]}}")
