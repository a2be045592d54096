"""An arq worker that outlives Redis outages, with every arq name under the key prefix.

arq's own loop ends when its Redis connection is lost; the jobs it runs (sweeps,
expiry, retention) must not stop with it, so a fresh worker is started after a
growing pause whenever one dies.

arq keys its jobs by job id alone (`arq:job:<id>`, `arq:in-progress:<id>`,
`arq:retry:<id>`, `arq:result:<id>`: fixed prefixes, shared by everything on the
Redis), and a cron tick's id is `<cron name>:<ms>`. So two deployments on one Redis
(different GOLDWIRE_KEY_PREFIX) with the same cron names would take each other's
ticks: whoever enqueues a tick first runs it, on its own queue. Every name is built
here from the prefix instead: queues (`Keys.job_queue`, whose `:health-check` key
arq derives from it), cron names and one-off job ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

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


def cron_name(prefix: str, service: str, job: str) -> str:
    """A cron job's name, hence its tick ids (`<prefix>:<service>:cron:<job>:<ms>`).
    The service is in it too: presence and activity both have a `sweep_dead_nodes`,
    and one tick id for both would run only one of them."""
    return f"{prefix}:{service}:cron:{job}"


def job_id(prefix: str, service: str, job: str) -> str:
    """A fresh id for a one-off job, under the prefix like every other arq key."""
    return f"{prefix}:{service}:{job}:{uuid.uuid4().hex}"


# A job fails on these (arq runs it again at the next tick); anything else is one record's.
TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)


@contextlib.contextmanager
def each_record(what: str, stats: Counter[str]) -> Iterator[None]:
    """Around one record of a job's batch: a failure that is the record's (bad data, a
    script refusing it) is logged and counted, and the job goes on with the rest;
    without this, one bad entry failed the job at every tick, for every record after
    it. `what` names the record in the log."""
    try:
        yield
    except TRANSIENT:
        raise
    except Exception:
        stats["job_records_skipped"] += 1
        log.exception("job: skipped %s", what)
