"""The private local Redis Cluster (goldwire.cli.redis_cluster): 3 masters + 3 replicas
come up ok, keys spread over the masters, a master killed under writes is replaced by its
replica within node timeout + a few seconds, and comes back as a replica.

These tests start clusters of their own (not the session `redis_cluster`), since they
kill nodes; each start takes about 2-3 s. The measured times are printed (`-s`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from goldwire.cli.redis_cluster import ClusterError, LocalCluster, find_cluster_cli

pytestmark = pytest.mark.skipif(
    find_cluster_cli() is None, reason="no redis-cli or valkey-cli to create a cluster with"
)

NODE_TIMEOUT_MS = 1000
FAILOVER_BOUND = NODE_TIMEOUT_MS / 1000 + 5  # detection (~2x timeout) + election + slack


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(node_timeout_ms=NODE_TIMEOUT_MS) as c:
        print(f"\ncluster 3+3 started in {c.start_seconds:.2f}s")
        yield c


def _cluster_client(c: LocalCluster) -> RedisCluster:
    return RedisCluster.from_url(c.url, socket_timeout=1.0, socket_connect_timeout=1.0)


def test_three_masters_each_with_a_synced_replica(cluster: LocalCluster) -> None:
    masters = cluster.masters()
    assert len(masters) == 3 and len(cluster.nodes) == 6
    assert cluster.url in {m.url for m in masters}
    replicas = [r for m in masters for r in cluster.replicas_of(m)]
    assert sorted(n.index for n in masters + replicas) == list(range(6))
    for node in cluster.nodes:
        with node.client() as c:
            assert c.cluster("INFO")["cluster_state"] == "ok"
            assert c.config_get("cluster-node-timeout") == {"cluster-node-timeout": "1000"}
            if node in replicas:
                assert c.info("replication")["master_link_status"] == "up"


def test_keys_in_different_slots_land_on_different_masters(cluster: LocalCluster) -> None:
    rc = _cluster_client(cluster)
    keys = [f"spread:{i}" for i in range(60)]
    try:
        for k in keys:
            rc.set(k, "v")
    finally:
        rc.close()
    held: dict[int, set[str]] = {}
    for m in cluster.masters():
        with m.client() as c:
            held[m.index] = set(c.keys("spread:*"))
    assert all(held.values()), held  # every master holds some of them
    assert sum(len(v) for v in held.values()) == len(keys)  # each key on exactly one
    assert set().union(*held.values()) == set(keys)


def test_killed_master_fails_over_under_writes_and_rejoins_as_replica(
    cluster: LocalCluster,
) -> None:
    victim = cluster.masters()[0]
    (replica,) = cluster.replicas_of(victim)
    acked: list[float] = []
    stop = threading.Event()

    def write() -> None:
        rc = _cluster_client(cluster)
        n = 0
        while not stop.is_set():
            n += 1
            try:
                rc.set(f"w:{n}", n)
                acked.append(time.monotonic())
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        rc.close()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        assert _until(lambda: len(acked) > 20, 10)
        killed = cluster.kill_master(0)
        assert killed is victim and killed.role == "down"
        # Right after the kill every node still gives the victim its slots: not over yet,
        # and the error says so with the nodes' log tails.
        with pytest.raises(ClusterError, match=r"killed node(.|\n)*log tail"):
            cluster.wait_for_failover(killed, timeout=0.0)
        seconds = cluster.wait_for_failover(killed, timeout=FAILOVER_BOUND + 10)
        print(f"\nfailover after kill -9: {seconds:.2f}s (node timeout {NODE_TIMEOUT_MS} ms)")
        assert seconds < FAILOVER_BOUND
        assert replica.role == "master"
        assert victim not in cluster.masters() and len(cluster.masters()) == 3
        failed_over_at = time.monotonic()
        assert _until(lambda: acked[-1] > failed_over_at, 15), (
            "writes did not resume after the failover"
        )
    finally:
        stop.set()
        writer.join(10)
    # The victim's slots take writes again, on the promoted replica.
    rc = _cluster_client(cluster)
    try:
        for i in range(60):
            rc.set(f"after:{i}", i)
    finally:
        rc.close()
    with replica.client() as direct:
        assert direct.keys("after:*")

    rejoin = cluster.restart(victim)
    print(f"restart to healthy cluster: {rejoin:.2f}s")
    assert victim.role == "replica"
    assert victim in cluster.replicas_of(replica)
    assert len(cluster.masters()) == 3


def test_durable_cluster_keeps_acknowledged_writes_across_kill_and_restart() -> None:
    # No replicas: the restarted master must reload its own AOF (appendfsync always).
    with LocalCluster(replicas_per_master=0, durable=True) as c:
        node = c.masters()[0]
        with node.client() as direct:
            assert direct.config_get("appendfsync") == {"appendfsync": "always"}
        rc = _cluster_client(c)
        try:
            keys = [f"durable:{i}" for i in range(30)]
            for k in keys:
                rc.set(k, k)
            with node.client() as direct:
                mine = direct.keys("durable:*")
            assert mine
            c.kill_master(0)
            c.restart(node)
            with node.client() as direct:
                assert sorted(direct.keys("durable:*")) == sorted(mine)
        finally:
            rc.close()


def _until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())
