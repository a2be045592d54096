"""The dead-gateway sweep that presence and activity both run.

A gateway killed with -9 sends no disconnects. While it lives it refreshes its
liveness key (`Keys.node_alive`) every few seconds; once that key has expired
the gateway is dead, and each service makes up the disconnects it never sent,
from what it knows of the gateway's connections. The made-up events carry
`SWEEP_SEQ`, above any sequence number a connection reaches, so they outrank
anything of the dead gateway still in flight in the event stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from goldwire.protocol.keys import Keys

SWEEP_SEQ = 2**50


async def dead_nodes(redis: Any, keys: Keys, nodes: Iterable[str]) -> list[str]:
    """Those of `nodes` whose liveness key is gone, in one pipelined round trip."""
    candidates = sorted(set(nodes))
    if not candidates:
        return []
    pipe = redis.pipeline(transaction=False)
    for node in candidates:
        pipe.exists(keys.node_alive(node))
    alive = await pipe.execute()
    return [node for node, up in zip(candidates, alive, strict=True) if not up]


async def sweep_dead_gateways(redis: Any, keys: Keys, nodes: Iterable[str],
                              end: Callable[[list[str]], Awaitable[int]]) -> int:
    """Call `end(dead)` with the dead ones of `nodes`, if any; returns what it returns
    (how many connections it ended)."""
    dead = await dead_nodes(redis, keys, nodes)
    return await end(dead) if dead else 0
