"""Presence state changes, each an atomic Lua call on one Redis Cluster slot.

The scripts are .lua files beside this module (headers name every KEYS and
ARGV entry; the shared member view and flush are presence_view.lua and
presence_flush.lua, pasted by `@include`); this module loads them by name.

Two sides, applied in two phases per batch of events:

- USER_APPLY, user_apply.lua (the user's slot): a connection's status, meta
  and rooms, the user's aggregate status (most present of online > busy > away, else offline)
  and a user version bumped whenever that aggregate changes.
- ROOM_APPLY / ROOM_STATUS, room_apply.lua / room_status.lua (the room's
  slot): which connections are in the room and the member list observers
  see. They publish nothing as they change it: they note what changed
  (below). The batch's last call on each
  room (flag `flush`) ends with `flush()`, which turns that into frames: ONE
  `diff` on the room channel carrying the room's next version, and, first, a note to
  each gateway with joiners (`P`, below) that their state is ready: the
  gateway reads the room in one MULTI (`goldwire.protocol.presence` says how
  it stays exact) and sends the state. Building a 1,000-member state in Lua,
  once per joiner, held Redis 2 ms per flush; the MULTI takes a tenth of that.
  The flush rides on a call the batch makes anyway, so coalescing costs no
  extra round trip or script call. ROOM_EXPIRE, room_expire.lua (pending
  leaves whose grace ran out) ends with the same flush.

Coalescing (one diff per room per batch, each user at most once with their
final view): observers of a busy room used to get one frame per event, so a
room of n members filling up cost O(n^2) frames. Two hashes on the room's slot
hold what has changed since the room's last published version:

- `pd` (pending diff) user -> the member view observers last saw ('' = not a
  member). The first script that changes a user's view writes it (HSETNX);
  later changes keep the first. The flush compares it with the view now:
  visible now and '' before -> `joins`; visible before and now but different
  -> `updates`; '' now and visible before -> `leaves` (with the view observers
  knew); came and went, or changed and changed back -> nothing.
- `ps` (pending states) conn -> node channel: joiners waiting for a state.

Why pending data in Redis rather than a snapshot kept by the process and a
compare at the end: a change is committed by one script, its frame published
by a later one (the flush). If the process dies in between, the batch is
redelivered (the stream is at-least-once) and its events are then no-ops
(their seqs are already applied), so a snapshot taken in memory by the second
run would see no change and the diff would be lost. The `pd`/`ps` hashes
survive the crash: the redelivered batch touches the same rooms, its last
call on each still flushes though its event is a no-op, and that flush (or
any later flush of the room, by any replica, or its pending-leave expiry)
publishes exactly what is pending, once, since a flush reads, publishes and
deletes it atomically. A redelivered batch whose diff was already published
finds `pd` empty and publishes nothing. A redelivered status, connect or
disconnect calls the user's rooms again though the user's aggregate is
already stored, so a run that died between the two phases still shows it.
Replicas applying batches to one room concurrently share the hashes: whichever
flushes first publishes all that is pending, the other finds nothing.

Why states are announced by the flush and read with `pd`: a state taken halfway
through a batch can show a user who then leaves again in the same batch (the
combined diff, comparing before-batch with after-batch, would say nothing
about them: a ghost), or a view the batch then changes back. The gateway's
read takes `pm` with the changes still pending in `pd` taken back, and the
version: exactly the room at that version, whenever the read happens, and
every later diff is relative to it. Clients still
apply diffs as upserts (`joins`, `updates`) and deletes (`leaves`) keyed by
user id, which also makes a repeated state harmless.

Order-independence: every change of a connection carries its per-connection
`seq`; a room applies a join or leave only if its seq is newer than what it
holds (the connection's record, or the tombstone of its last leave), and a
member view takes status and meta only from a newer user version. Applying an
event twice changes nothing and publishes nothing.

Room channel payloads for presence are `- <version> <frame>` (room messages
are `<offset> <frame>`); node channel payloads for joiners are
`P <room>\\n<version>\\n<conn> <conn> ...`: read the room's state (its version
is this one or newer: a state read later is exact at its own version, and the
gateway drops the diffs it already contains). Both layouts are typed in
goldwire.protocol.channels, which gateways parse them with.
"""

from __future__ import annotations

from goldwire.store.lua import load

USER_APPLY = load(__package__, "user_apply.lua")
ROOM_APPLY = load(__package__, "room_apply.lua")
ROOM_STATUS = load(__package__, "room_status.lua")
ROOM_EXPIRE = load(__package__, "room_expire.lua")
