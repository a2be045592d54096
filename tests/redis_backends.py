"""The Redis backends a system test can run on (tests/conftest.py's `data_redis`).

Why a module of its own: the conftest fixture and the tests that parametrise by hand
(`indirect=True`) name the backends from one list, as Starlette's tests do with anyio's.
"""

from __future__ import annotations

from dataclasses import dataclass

# "plain": one Redis (a one-node cluster under GOLDWIRE_TEST_REDIS_CLUSTER=1);
# "cluster": a 3-master, 3-replica Redis Cluster (goldwire.cli.redis_cluster).
REDIS_BACKENDS = ["plain", "cluster"]


@dataclass(frozen=True)
class RedisBackend:
    """Where a test's processes keep their data (`url`, REDIS_URL) and their arq jobs
    (`jobs_url`, JOBS_REDIS_URL: the data Redis itself unless that is a cluster)."""

    name: str
    url: str
    jobs_url: str

    @property
    def is_cluster(self) -> bool:
        """A multi-node cluster: clients must follow MOVED and shard pub/sub."""
        return self.name == "cluster"

    def env(self) -> dict[str, str]:
        """The environment a process started by hand needs for this backend."""
        return {"REDIS_URL": self.url, "JOBS_REDIS_URL": self.jobs_url}
