"""An arq worker that outlives Redis outages.

arq's own loop ends when its Redis connection is lost; the jobs it runs (sweeps,
expiry, retention) must not stop with it, so a fresh worker is started after a
growing pause whenever one dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable

from arq.worker import Worker

log = logging.getLogger("goldwire.service.jobs")


async def run_supervised(name: str, build: Callable[[], Worker], stats: Counter[str]) -> None:
    """Run `build()`'s worker until cancelled, replacing it whenever it dies."""
    delay = 0.5
    while True:
        worker = build()
        try:
            await worker.main()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stats["job_runner_restarts"] += 1
            log.warning("arq %s worker stopped (%s); a new one in %.1fs", name, exc, delay)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.close(), 2)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
