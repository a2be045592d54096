"""A room's presence state as clients are sent it, built from what Redis stores.

The presence service keeps each member's view (`pm`, user → member JSON) and,
until its next flush publishes a diff, each changed user's view as observers
last saw it (`pd`, user → view, '' = not a member). A gateway reads, in one
MULTI, the views (HVALS `pm`), the version, and for each pending user the view
before and now (`PENDING_VIEWS`, a few entries at most): the views with the
pending changes taken back are exactly the room at that version, so the diffs
that follow apply to it. Reading `pm` alone could catch a batch halfway (a user
who joins and leaves in one batch is in `pm` for a moment, and no diff would
ever remove them: a ghost). HVALS rather than HGETALL: the gateway never needs
the 1,000 user ids of a big room, and parsing and sorting them tripled the
read's CPU (0.9 ms against 0.3 ms). Pure data, no I/O.
"""

from __future__ import annotations

import json

# KEYS: pv, pd, pm. Returns {version, {before, now, before, now, ...}} for the users
# whose view changed since the last flush ('' = not a member).
PENDING_VIEWS = """
local pending = redis.call('HGETALL', KEYS[2])
local out = {}
for i = 1, #pending, 2 do
  table.insert(out, pending[i + 1])
  table.insert(out, redis.call('HGET', KEYS[3], pending[i]) or '')
end
return {tonumber(redis.call('GET', KEYS[1]) or '0'), out}
"""


def published_members(views: list[bytes], pending: list[bytes]) -> list[bytes]:
    """The member views at the room's published version, from all stored views and
    the (before, now) pairs of PENDING_VIEWS. A view names its user, so no two
    users' views are equal bytes."""
    if not pending:
        return views
    now = {view for view in pending[1::2] if view}
    before = [view for view in pending[0::2] if view]
    return [view for view in views if view not in now] + before


def state_frame(room: str, version: int, members: list[bytes]) -> bytes:
    """The `presence_update` of kind `state`, joining the stored member JSON as is."""
    return (b'{"type":"presence_update","room":' + json.dumps(room).encode()
            + b',"data":{"kind":"state","version":' + str(version).encode()
            + b',"members":[' + b",".join(members) + b"]}}")
