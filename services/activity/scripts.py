"""Activity's Lua: one atomic call records a chunk of one tenant's events.

The scripts are .lua files beside this module: record.lua (RECORD), fold_minute.lua
(FOLD_MINUTE), users_day.lua (USERS_DAY); activity_keys.lua, pasted by `@include`,
spells the tenant's key families once.

Why one tenant slot (`{a/<tenant>}`) and not the user and room slots presence uses:
an event touches a user's history, a room's history, the tenant's counters and the
live state. On per-user/per-room slots that is one script call per user and per room
in a batch (hundreds per batch of 500), each a round of argument packing in Python
and a script invocation in Redis; on the tenant slot it is one call per chunk of
events, which is what lets one worker record well over 20,000 events/s. The price:
one tenant's activity lives on one Redis Cluster shard (tenants spread over shards;
a tenant too big for one shard would need bucketed tags `{a/<tenant>/<n>}`, a change
confined to `keys.py` and the recorder). RECORD gets the tenant's fixed keys in
KEYS; the per-user, per-room, per-connection and per-time keys it touches are the
tenant's tag plus a part of `keys.ACTIVITY_PARTS`, made inside the call, since
which ones a chunk touches is known only there (a visit's time goes to every UTC day
it spans, from a join an earlier chunk stored). They all hash to the tag's slot,
the slot of every key in KEYS; tests/service/test_activity_scripts.py checks it.
The roll-up scripts get every key they touch in KEYS.

Exactly once without a dedupe store: each recorded event is first added with
`ZADD NX` to its history (the user's, else the room's, else the tenant's API log);
only when that adds a member are its counters, summaries and live effects applied,
in the same atomic call. The member is the event's entry, identical on every
redelivery (XAUTOCLAIM, a consumer killed mid-batch) and on a gateway's re-sent
XADD, so a duplicate finds itself and counts nothing. This holds as long as the
history holds the event: for the retention window, and events older than it are not
recorded at all. Replayed events (`replay`=1: a gateway re-announcing its connections
after a Redis gap) only rebuild live state and open time-in-room intervals that are
missing; they are not new activity.

The packed event and the history entry it ends with are described in events.py.
Counters are written per minute only (one HINCRBY per distinct field and chunk);
the roll-up job folds each minute that changed into its hour and day (FOLD_MINUTE).
"""

from __future__ import annotations

from goldwire.store.lua import load

RECORD = load(__package__, "record.lua")
FOLD_MINUTE = load(__package__, "fold_minute.lua")
USERS_DAY = load(__package__, "users_day.lua")
