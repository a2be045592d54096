"""Room options by name pattern (`ROOM_OPTIONS`), like Centrifugo's namespaces.

A deployment says, per pattern of room names, whether rooms show presence and how
much history they keep. A document platform wants presence on its documents and
none in a 2,000-seat webinar lobby, where every join would send the newcomer the
whole member list and every member a diff (O(n²) frames while the room fills).

    ROOM_OPTIONS='[{"pattern": "lobby:*", "presence": false},
                   {"pattern": "doc:*", "history_size": 200}]'

Patterns are shell-style (`fnmatch`, case-sensitive), matched against the room name
(not the tenant); the first rule that matches wins; a room no rule matches gets the
defaults (presence on, the deployment's HISTORY_SIZE). Pure data: the gateway and the
Redis publisher read the same rules, and a rule's mistakes fail at start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase

_CACHE_LIMIT = 10_000  # room names remembered per policy (a map, dropped when full)


class RoomOptionsError(ValueError):
    """ROOM_OPTIONS is not a list of rules this module understands."""


@dataclass(frozen=True, slots=True)
class RoomOptions:
    presence: bool = True
    history_size: int | None = None  # None: the deployment's HISTORY_SIZE


DEFAULT = RoomOptions()


@dataclass(frozen=True, slots=True)
class RoomRule:
    pattern: str
    options: RoomOptions


class RoomPolicy:
    """The rules of one deployment; `for_room` is cached, so the hot path is a dict get."""

    def __init__(self, rules: tuple[RoomRule, ...] = ()) -> None:
        self.rules = rules
        self._cache: dict[str, RoomOptions] = {}

    @classmethod
    def parse(cls, text: str | None) -> RoomPolicy:
        """Rules from ROOM_OPTIONS' JSON ('' or None: no rules)."""
        if not text or not text.strip():
            return cls()
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise RoomOptionsError(f"ROOM_OPTIONS is not JSON: {exc}") from None
        if not isinstance(raw, list):
            raise RoomOptionsError("ROOM_OPTIONS must be a JSON list of rules")
        return cls(tuple(_rule(i, item) for i, item in enumerate(raw)))

    def for_room(self, room: str) -> RoomOptions:
        found = self._cache.get(room)
        if found is not None:
            return found
        found = next((r.options for r in self.rules if fnmatchcase(room, r.pattern)), DEFAULT)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[room] = found
        return found


def _rule(i: int, item: object) -> RoomRule:
    where = f"ROOM_OPTIONS[{i}]"
    if not isinstance(item, dict):
        raise RoomOptionsError(f"{where} must be an object")
    unknown = set(item) - {"pattern", "presence", "history_size"}
    if unknown:
        raise RoomOptionsError(f"{where}: unknown option(s) {sorted(unknown)}")
    pattern = item.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise RoomOptionsError(f"{where}: 'pattern' must be a non-empty string")
    presence = item.get("presence", True)
    if not isinstance(presence, bool):
        raise RoomOptionsError(f"{where}: 'presence' must be true or false")
    history = item.get("history_size")
    if history is not None and (not isinstance(history, int) or isinstance(history, bool)
                                or history < 1):
        raise RoomOptionsError(f"{where}: 'history_size' must be a positive integer")
    return RoomRule(pattern, RoomOptions(presence, history))
