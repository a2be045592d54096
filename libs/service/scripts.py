"""`queue_script` for redis-py's own registered scripts, until every script is a
`.lua` file run through goldwire.store.lua (which holds `run_loading_scripts`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript

from goldwire.store.lua import run_loading_scripts

__all__ = ["queue_script", "run_loading_scripts"]


def queue_script(pipe: Any, script: AsyncScript, keys: Sequence[Any],
                 args: Sequence[Any]) -> None:
    """Queue one call of `script` in `pipe` (a redis-py pipeline) as EVALSHA."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)
