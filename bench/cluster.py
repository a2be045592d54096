"""Goldwire on a Redis Cluster beside Goldwire on one Redis, in one run, as ratios.

    .venv/bin/python bench/cluster.py                 # two rounds, about 4 minutes
    .venv/bin/python bench/cluster.py --smoke         # tiny, to check the harness

Scenarios (bench/fanout.py's clients and steps, the whole system: a gateway, presence,
sessions and activity, published to with goldwire.client.RedisPublisher):
* fanout: one room of `--clients` at `--rate` msg/s;
* rooms: `--room-clients` in rooms of 10 at `--room-rate` msg/s spread over the rooms.
Backends alternate single, cluster, single, cluster... (`--rounds`), each on a fresh
Redis: one private Redis, or a private 3-master + 3-replica cluster (goldwire.cli.
redis_cluster) with a plain jobs Redis. Per step: deliveries/s, p99, lost/duplicated/out of
order, and CPU per delivery of the Goldwire processes and of every Redis process (the
cluster's six included). The summary gives cluster/single ratios of the medians.
On 2 cores the six cluster nodes share the client CPU: read CPU per delivery, not
latency, as the cluster's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from fanout import (
    ROOM,
    Children,
    Config,
    Pool,
    WorkerProc,
    load_system,
    log,
    pin_all_threads,
    raise_nofile,
    start_redis,
)

ROOM_SIZE = 10


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=1000, help="fan-out room size (1000)")
    p.add_argument("--rate", type=float, default=30.0, help="fan-out msg/s (30)")
    p.add_argument("--room-clients", type=int, default=2000, help="many-rooms clients (2000)")
    p.add_argument("--room-rate", type=float, default=200.0, help="many-rooms msg/s (200)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per step (8)")
    p.add_argument("--rounds", type=int, default=2, help="single/cluster pairs (2)")
    p.add_argument("--smoke", action="store_true", help="50 clients, 1 s, one round")
    return p.parse_args(argv)


def config(args: argparse.Namespace, backend: str) -> Config:
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, client_cpus = ({cpus[0]}, set(cpus[1:])) if len(cpus) >= 2 else (None, None)
    return Config(
        clients=args.clients, rates=[args.rate], duration=args.duration, idle_connections=0,
        skip_ceiling=True, publish_via="client", payload_bytes=100, heartbeat=30.0,
        concurrency=100, connect_timeout=60.0, client_procs=len(client_cpus or {0}),
        src_addrs=0, server_cpus=server_cpus, client_cpus=client_cpus, systems=["goldwire"],
        asgi_send="loop", asgi_ws="auto", smoke=args.smoke, services=True, redis=backend)


async def one_backend(args: argparse.Namespace, backend: str, children: Children,
                      redis_pids: list[int], cfg: Config, k: int) -> list[dict[str, Any]]:
    pool = Pool([await WorkerProc.start(children, i, cfg.client_cpus)
                 for i in range(cfg.client_procs)])
    try:
        out = await load_system("goldwire", cfg, children, pool, redis_pids, 100_000 * k,
                                clients=args.clients, rooms=[ROOM], rates=[args.rate])
        nrooms = max(1, args.room_clients // ROOM_SIZE)
        out += await load_system("goldwire", cfg, children, pool, redis_pids,
                                 100_000 * k + 50_000, clients=args.room_clients,
                                 rooms=[f"doc-{i}" for i in range(nrooms)],
                                 rates=[args.room_rate], kind="rooms")
    finally:
        for w in pool.workers:
            with contextlib.suppress(Exception):
                await w.call({"cmd": "exit"}, timeout=10)
            children.stop(w.proc, grace=5)
    for r in out:
        r["backend"] = backend
        print(json.dumps(r), flush=True)
    return out


def summarize(results: list[dict[str, Any]]) -> None:
    def med(kind: str, backend: str, field: str) -> float | None:
        vals = [r[field] for r in results
                if r["kind"] == kind and r["backend"] == backend and r.get(field) is not None]
        return statistics.median(vals) if vals else None

    fields = [("deliveries_per_s", "deliveries/s"), ("p99_ms", "p99 ms"),
              ("server_cpu_us_per_delivery", "Goldwire CPU µs/delivery"),
              ("server_plus_redis_us_per_delivery", "with Redis µs/delivery")]
    print("\n| scenario | measure | single Redis | 3+3 cluster | cluster / single |")
    print("|---|---|---|---|---|")
    for kind in ("fanout", "rooms"):
        for field, label in fields:
            a, b = med(kind, "single", field), med(kind, "cluster", field)
            ratio = f"{b / a:.2f}" if a and b else "n/a"
            print(f"| {kind} | {label} | {_num(a)} | {_num(b)} | {ratio} |")
    bad = [r for r in results if r["lost"] or r["duplicated"] or r["out_of_order"]]
    print(f"\nlost/duplicated/out of order: {'none' if not bad else len(bad)} step(s)")


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.clients, args.room_clients, args.duration, args.rounds = 50, 100, 1.0, 1
        args.rate, args.room_rate = 10.0, 20.0
    raise_nofile()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    children = Children(tempfile.mkdtemp(prefix="goldwire-cluster-bench-"))
    results: list[dict[str, Any]] = []
    try:
        for k, backend in enumerate(["single", "cluster"] * args.rounds):
            cfg = config(args, backend)
            if cfg.client_cpus:
                os.sched_setaffinity(0, cfg.client_cpus)
            started: list[Any] = []
            try:
                pids = start_redis(cfg, started)
                for pid in pids:
                    pin_all_threads(pid, cfg.client_cpus)
                log(f"round {k // 2 + 1}: {backend}")
                results += asyncio.run(one_backend(args, backend, children, pids, cfg, k))
            finally:
                children.stop_all()
                for server in started:
                    server.stop()
        summarize(results)
        return 1 if args.smoke and any(r["lost"] or r["duplicated"] for r in results) else 0
    except KeyboardInterrupt:
        return 130
    finally:
        children.stop_all()


if __name__ == "__main__":
    sys.exit(main())
