"""Lua scripts kept as `.lua` files beside the module that runs them, called by name.

A script's header names every KEYS and ARGV entry, one per line, in order:

    -- KEYS[1] history   the room's history stream
    -- ARGV[1] channel   the room's pub/sub channel
    -- ARGV[2..] live    every live node id (the rest of ARGV, a list)

so a caller writes `await publish(history=..., channel=...)` and never counts
positions. The last KEYS or ARGV entry may be variadic (`[n..]`): it takes a
list. `-- @include name.lua` pastes a shared helper file (looked up beside the
script) so offset comparison and the like are written once. Every key a script
touches must come in KEYS (Redis Cluster routes a call by them); the header
makes that reviewable and `tests/unit/test_lua_loader.py` checks the headers.

In a pipeline, `queue` adds a bare EVALSHA: redis-py would ask Redis `SCRIPT
EXISTS` before executing any pipeline holding a registered script, one more
round trip per batch on the hot path of every stream consumer (measured: 8% of
the presence worker's CPU). If Redis lost its script cache (a restart, SCRIPT
FLUSH), the pipeline fails with NoScriptError; `run_loading_scripts` then loads
the scripts and runs the whole operation once more, so the operation must be
idempotent as a whole (ours are: stream handlers are written for redelivery).

Errors: `LuaHeaderError` when a file's header is malformed (at load, so at
import time of the module that loads it); `TypeError` when a call misses or
adds a name.
"""

from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from goldwire.store.connect import sharded

# Every script runs with a shebang and no flags: Redis then refuses, on a cluster, any
# key the script reaches in a slot other than its KEYS' (without one, Redis 7 allows it
# for old scripts' sake). The tests run on a one-node cluster to hold every script to it.
SHEBANG = "#!lua\n"
# `redis.call(PUB, channel, message)` publishes a room, user or tenant message: each
# script has two sources, PUB = PUBLISH for a plain Redis and SPUBLISH (sharded pub/sub,
# the channel in the script's slot) for a cluster; `BoundScript` picks by its client.
_PUB = "local PUB = '{}'\n"
_HEADER = re.compile(r"^--\s*(KEYS|ARGV)\[(\d+)(\.\.)?\]\s+([a-z_][a-z0-9_]*)\b")
_INCLUDE = re.compile(r"^--\s*@include\s+([\w.-]+\.lua)\s*$")


class LuaHeaderError(ValueError):
    """A script's KEYS/ARGV header is missing an entry, out of order or ambiguous."""


@dataclass(frozen=True)
class LuaScript:
    """One script's source (includes pasted) and the names of its keys and arguments."""

    name: str
    source: str
    keys: tuple[str, ...]
    args: tuple[str, ...]
    variadic_keys: bool = False  # the last key name takes a list
    variadic_args: bool = False  # the last argument name takes a list
    sharded_source: str = ""  # the source for a Redis Cluster (PUB = SPUBLISH)

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()

    def source_for(self, sharded: bool) -> str:
        return self.sharded_source if sharded else self.source

    def split(self, named: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        """KEYS and ARGV in header order from the caller's named values."""
        try:
            if len(named) == len(self.keys) + len(self.args):
                if not (self.variadic_keys or self.variadic_args):  # the hot path
                    return [named[n] for n in self.keys], [named[n] for n in self.args]
                return (_ordered(named, self.keys, self.variadic_keys),
                        _ordered(named, self.args, self.variadic_args))
        except KeyError:
            pass
        missing = set(self.keys + self.args) - named.keys()
        extra = named.keys() - set(self.keys + self.args)
        raise TypeError(f"{self.name}: missing {sorted(missing)}, unexpected {sorted(extra)}")

    def command(self, sharded: bool = False, **named: Any) -> tuple[Any, ...]:
        """The call as a plain EVAL command (for queues that must survive a SCRIPT FLUSH)."""
        keys, args = self.split(named)
        return ("EVAL", self.source_for(sharded), len(keys), *keys, *args)


def _ordered(named: dict[str, Any], names: Sequence[str], variadic: bool) -> list[Any]:
    if not variadic:
        return [named[n] for n in names]
    return [named[n] for n in names[:-1]] + list(named[names[-1]])


def parse(name: str, text: str, include: Any = None) -> LuaScript:
    """Parse a script's header; `include(filename)` returns a helper file's text."""
    lines: list[str] = []
    for line in text.splitlines():
        match = _INCLUDE.match(line.strip())
        if match:
            if include is None:
                raise LuaHeaderError(f"{name}: @include {match[1]} with no place to look")
            lines.append(include(match[1]).rstrip("\n"))
        else:
            lines.append(line)
    named: dict[str, list[tuple[int, str, bool]]] = {"KEYS": [], "ARGV": []}
    for line in text.splitlines():
        match = _HEADER.match(line.strip())
        if match:
            named[match[1]].append((int(match[2]), match[4], bool(match[3])))
    entries: dict[str, tuple[tuple[str, ...], bool]] = {}
    for kind, found in named.items():
        positions = [p for p, _, _ in found]
        if positions != list(range(1, len(found) + 1)):
            raise LuaHeaderError(f"{name}: {kind} entries must be numbered 1, 2, ... "
                                 f"in order (found {positions})")
        if any(v for _, _, v in found[:-1]):
            raise LuaHeaderError(f"{name}: only the last {kind} entry can be variadic")
        entries[kind] = (tuple(n for _, n, _ in found), bool(found and found[-1][2]))
    keys, variadic_keys = entries["KEYS"]
    args, variadic_args = entries["ARGV"]
    if len(set(keys + args)) != len(keys) + len(args):
        raise LuaHeaderError(f"{name}: a name is used twice in KEYS/ARGV")
    body = "\n".join(lines) + "\n"
    return LuaScript(name, SHEBANG + _PUB.format("PUBLISH") + body, keys, args,
                     variadic_keys, variadic_args, SHEBANG + _PUB.format("SPUBLISH") + body)


@cache
def load(package: str, filename: str) -> LuaScript:
    """The script `filename` shipped in `package` (e.g. `load(__package__, "x.lua")`)."""
    folder = resources.files(package)

    def include(helper: str) -> str:
        return (folder / helper).read_text()

    return parse(filename, (folder / filename).read_text(), include)


class BoundScript:
    """A script on one Redis client: EVALSHA, loading it when Redis does not know it."""

    def __init__(self, script: LuaScript, redis: Any) -> None:
        self.script = script
        self.redis = redis
        self.source = script.source_for(sharded(redis))
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        fast = _fast_queue(self.sha, script)
        if fast is not None:
            self.queue = fast  # type: ignore[method-assign]

    async def __call__(self, **named: Any) -> Any:
        keys, args = self.script.split(named)
        try:
            return await self.redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.sha = await self.redis.script_load(self.source)
            return await self.redis.evalsha(self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Any, **named: Any) -> None:
        """Queue the call in a pipeline as a bare EVALSHA (see `run_loading_scripts`)."""
        keys, args = self.script.split(named)
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)

    async def load(self) -> None:
        """Put the script in Redis's cache (after a restart or SCRIPT FLUSH); on a
        cluster, on every master."""
        self.sha = await self.redis.script_load(self.source)


def _fast_queue(sha: str, script: LuaScript) -> Callable[..., None] | None:
    """`queue` for a script with no variadic entry as a function whose keyword-only
    parameters are the header's names, so Python binds them with no dict or list built:
    the generic path cost stream consumers ~2 µs more per call than positional
    arguments (measured on ROOM_APPLY, two calls per presence event). Names are
    identifiers (the header's pattern); a keyword-named header keeps the generic path."""
    names = script.keys + script.args
    if script.variadic_keys or script.variadic_args or not names or any(
            keyword.iskeyword(n) or n in ("pipe", "_sha") for n in names):
        return None
    params = ", ".join(names)
    # execute_command, not evalsha: a cluster pipeline refuses its evalsha method
    source = (f"def queue(pipe, *, {params}):\n"
              f"    pipe.execute_command('EVALSHA', _sha, {len(script.keys)}, {params})\n")
    namespace: dict[str, Any] = {"_sha": sha}
    exec(source, namespace)  # the names come from a parsed header, checked above
    queue: Callable[..., None] = namespace["queue"]
    return queue


def bind(redis: Any, package: str, filename: str) -> BoundScript:
    """`load` then bind to `redis`: what a module's constructor calls."""
    return BoundScript(load(package, filename), redis)


T = TypeVar("T")


async def run_loading_scripts(redis: Any, scripts: Iterable[Any],
                              operation: Callable[[], Awaitable[T]]) -> T:
    """Run `operation` (which queues `scripts` in pipelines); if Redis did not know a
    script, load them all and run it once more."""
    try:
        return await operation()
    except NoScriptError:
        for script in scripts:
            if isinstance(script, BoundScript):
                await script.load()
            else:  # a redis-py AsyncScript
                script.sha = await redis.script_load(script.script)
        return await operation()
