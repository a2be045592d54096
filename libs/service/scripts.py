"""Lua scripts in pipelines, without a `SCRIPT EXISTS` round trip per pipeline.

redis-py asks Redis `SCRIPT EXISTS` before executing any pipeline that holds a
registered script: one more round trip per batch, on the hot path of every
stream consumer (measured: 8% of the presence worker's CPU and two of its
seven round trips per batch). Scripts queued with `queue_script` are bare
EVALSHAs instead. If Redis lost its script cache (a restart, SCRIPT FLUSH), the
pipeline fails with NoScriptError; `run_loading_scripts` then loads the
scripts and runs the whole operation once more, so the operation must be
idempotent as a whole (ours are: stream handlers are written for redelivery).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from goldwire.store.lua import BoundScript

T = TypeVar("T")


def queue_script(pipe: Any, script: AsyncScript, keys: Sequence[Any],
                 args: Sequence[Any]) -> None:
    """Queue one call of `script` in `pipe` (a redis-py pipeline) as EVALSHA."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


async def run_loading_scripts(redis: Redis, scripts: Iterable[AsyncScript | BoundScript],
                              operation: Callable[[], Awaitable[T]]) -> T:
    """Run `operation`; if Redis did not know a script, load them all and run it again."""
    try:
        return await operation()
    except NoScriptError:
        for script in scripts:
            if isinstance(script, BoundScript):
                await script.load()
            else:
                script.sha = await redis.script_load(script.script)
        return await operation()
