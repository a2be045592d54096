"""The benchmark suite: Goldwire, the peers and the ceiling, every scenario, one run.

    make bench          # .venv/bin/python bench/run_all.py          (about 12 minutes)
    make bench-smoke    # .venv/bin/python bench/run_all.py --smoke  (under 60 s; CI runs it)

Four systems, the same clients, the same machine (`bench/fanout.py` has the parts):

* goldwire: the gateway and every service process `goldwire up` starts, on a private
  Redis, published to with `goldwire.client.RedisPublisher` (a backend's publish path);
* socketio: the peer, python-socketio `AsyncServer` + `AsyncRedisManager` under uvicorn
  (`bench/sio_server.py`), one process like the gateway, published to by a write-only
  `AsyncRedisManager`;
* node: Node's Socket.IO 4.8 with `@socket.io/redis-adapter` on ioredis
  (`bench/node/server.js`, its packages installed by `npm ci` on first use), one process,
  the same Socket.IO clients, published to in `@socket.io/redis-emitter`'s wire format;
* ceiling: a bare `websockets` `broadcast()` server, no Redis, no protocol
  (`bench/ceiling_server.py`). `--systems ...,asgi` adds the FastAPI/uvicorn reference.

Scenarios, each system on a fresh server for each (`--scenarios` picks):

* fanout: 1,000 clients in one room; the publish rate stepped upward; per step
  deliveries/s, p50/p99/max latency, lost, duplicated, out of order, server CPU per
  delivery. A system's steps stop after two it did not sustain (p99 < 50 ms, no loss).
* rooms: 5,000 clients in 500 rooms of 10, publishes spread over the rooms.
* small-room: 100 clients in one room (a busy document), the rate stepped upward to
  find the highest deliveries/s with p99 under 50 ms.
* storm: 2,000 clients connecting at once into one room (everyone reopening the same
  document after a deploy): seconds until every join is answered and the room's presence
  traffic has stopped; Goldwire twice, presence on and presence off by a room option.
* idle: server RSS per idle authenticated connection at 5,000 for every system; the
  connect rate of those connections (JWT verified, room joined, and for Goldwire the
  connection recorded: events, presence) is its own result line (kind `connect`).
* large-idle: the same for Goldwire at 20,000 connections from several loopback source
  addresses (capped below the per-process file limit, which this machine fixes at 20,000).

Every result is one JSON line on stdout; then the targets (PASS/MISS) and the summary
tables. A full run rewrites the generated part of docs/benchmarks.md and the chart
docs/benchmarks-fanout.png; `--smoke` runs every scenario tiny, writes its page and chart
to a temporary folder instead, and exits 1 if the harness itself is broken (a scenario
failed, a client could not connect, a message was lost, duplicated or reordered). Numbers
never fail a run: a MISS is reported, not raised.

Placement: with two or more CPUs the server processes are pinned to the first CPU, the
clients, Redis and the publisher to the others (not in `--smoke`). Every process
started is stopped at the end, also on Ctrl-C, SIGTERM or an error. Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import report
from fanout import (
    NODE_DIR,
    ROOM,
    SYSTEMS,
    Children,
    Config,
    Pool,
    WorkerProc,
    emit,
    ensure_node_peer,
    idle_system,
    keep_results_in,
    load_system,
    pin_all_threads,
    raise_nofile,
    storm_system,
)

from goldwire.cli.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
CHART_NAME = "benchmarks-fanout.png"
SCENARIOS = ("fanout", "rooms", "small-room", "storm", "idle", "large-idle")
SOCKETS_PER_WORKER = 15_000  # client sockets one client process holds (fd limit 20,000 here)


STORM_SYSTEMS = ("goldwire", "socketio", "node")  # the ceiling joins no room
SMALL_ROOM = "bench:small"


def empty_results() -> dict[str, Any]:
    """Result lines by scenario (as `kind` names them), then errors and skipped parts."""
    return {"fanout": [], "rooms": [], "small-room": [], "storm": [], "idle": [],
            "connect": [], "errors": [], "skipped": []}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Plan:
    """The sizes of one run (the full run's unless `--smoke`)."""

    systems: list[str]
    scenarios: list[str]
    clients: int = 1000
    rates: list[float] = field(default_factory=lambda: [5, 10, 20, 30, 40, 50, 60, 70, 80, 100])
    duration: float = 5.0
    room_clients: int = 5000
    rooms: int = 500
    room_rates: list[float] = field(default_factory=lambda: [250, 500, 1000])
    room_inflight: int = 16
    small_clients: int = 100
    small_rates: list[float] = field(
        default_factory=lambda: [50, 100, 200, 400, 600, 800, 1000, 1200, 1500])
    small_duration: float = 3.0
    storm_clients: int = 2000
    idle: int = 5000
    large_idle: int = 20_000
    large_sources: int = 4
    time_limit: float = 720.0
    smoke: bool = False


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Goldwire benchmark suite (see the module doc).")
    p.add_argument("--smoke", action="store_true",
                   help="every scenario tiny (under a minute): checks the harness, not speed")
    p.add_argument("--systems", default="goldwire,socketio,node,ceiling",
                   help="comma-separated out of goldwire, socketio, node, ceiling, asgi "
                        "(goldwire,socketio,node,ceiling)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated out of {', '.join(SCENARIOS)} (all)")
    p.add_argument("--clients", type=int, help="fan-out clients (1000; smoke 50)")
    p.add_argument("--rates", help="fan-out msg/s steps (5,10,20,30,...,80,100)")
    p.add_argument("--duration", type=float, help="seconds per step (5; smoke 0.5)")
    p.add_argument("--room-clients", type=int, help="many-rooms clients (5000; smoke 100)")
    p.add_argument("--rooms", type=int, help="many-rooms rooms (500; smoke 10)")
    p.add_argument("--room-rates", help="many-rooms msg/s steps over all rooms (250,500,1000)")
    p.add_argument("--small-clients", type=int, help="small-room clients (100; smoke 20)")
    p.add_argument("--small-rates", help="small-room msg/s steps (50,100,200,400,...,1500)")
    p.add_argument("--storm-clients", type=int, help="connect-storm clients (2000; smoke 60)")
    p.add_argument("--idle-connections", type=int, help="idle connections (5000; smoke 100)")
    p.add_argument("--large-idle", type=int,
                   help="Goldwire's large idle count (20000, capped by the file limit; smoke 200)")
    p.add_argument("--large-sources", type=int, help="its loopback source addresses (4; smoke 2)")
    p.add_argument("--time-limit", type=float,
                   help="seconds after which scenarios not yet started are skipped "
                        "(720; smoke 110)")
    p.add_argument("--publish-via", choices=("client", "redis", "http"), default="client",
                   help="Goldwire publisher (see bench/fanout.py; client)")
    p.add_argument("--payload-bytes", type=int, default=100)
    p.add_argument("--heartbeat", type=float, default=30.0,
                   help="server ping interval in s, every system alike (30)")
    p.add_argument("--concurrency", type=int, default=100,
                   help="handshakes in flight per client process (100)")
    p.add_argument("--no-services", action="store_true",
                   help="run Goldwire's gateway without its service processes")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the servers and the clients to separate CPUs")
    p.add_argument("--doc", help="the page to write (docs/benchmarks.md; smoke: a temp folder; "
                                 "'-' for none)")
    p.add_argument("--jsonl", help="also write every result line to this file")
    p.add_argument("--render", metavar="FILE",
                   help="run nothing: rebuild the tables, the page and the chart from a run's "
                        "saved stdout (or --jsonl file)")
    return p.parse_args(argv)


def floats(text: str, what: str) -> list[float]:
    vals = [float(x) for x in text.split(",") if x.strip()]
    if not vals or any(v <= 0 for v in vals):
        raise SystemExit(f"{what}: positive numbers, comma-separated")
    return vals


def make_plan(args: argparse.Namespace) -> Plan:
    systems = [x.strip() for x in args.systems.split(",") if x.strip()]
    if not systems or set(systems) - set(SYSTEMS) or len(set(systems)) != len(systems):
        raise SystemExit(f"--systems: distinct names out of {', '.join(SYSTEMS)}")
    scenarios = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    if not scenarios or set(scenarios) - set(SCENARIOS):
        raise SystemExit(f"--scenarios: names out of {', '.join(SCENARIOS)}")
    plan = Plan(systems=systems, scenarios=scenarios, smoke=args.smoke)
    if args.smoke:
        plan.clients, plan.rates, plan.duration = 50, [20, 40], 0.5
        plan.room_clients, plan.rooms, plan.room_rates = 100, 10, [100]
        plan.small_clients, plan.small_rates, plan.small_duration = 20, [50], 0.5
        plan.storm_clients = 60
        plan.idle, plan.large_idle, plan.large_sources = 100, 200, 2
        plan.time_limit = 110.0  # a hard bound; the smoke warns past 60 s
    for name, conv in (("clients", int), ("duration", float), ("room_clients", int),
                       ("rooms", int), ("large_sources", int), ("time_limit", float),
                       ("small_clients", int), ("storm_clients", int)):
        value = getattr(args, name)
        if value is not None:
            setattr(plan, name, conv(value))
    if args.rates:
        plan.rates = floats(args.rates, "--rates")
    if args.room_rates:
        plan.room_rates = floats(args.room_rates, "--room-rates")
    if args.small_rates:
        plan.small_rates = floats(args.small_rates, "--small-rates")
    if args.idle_connections is not None:
        plan.idle = args.idle_connections
    if args.large_idle is not None:
        plan.large_idle = args.large_idle
    if min(plan.clients, plan.room_clients, plan.rooms, plan.idle, plan.large_idle,
           plan.small_clients, plan.storm_clients) <= 0:
        raise SystemExit("client, room and connection counts must be positive")
    return plan


def make_config(args: argparse.Namespace, plan: Plan) -> Config:
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus: set[int] | None = None
    client_cpus: set[int] | None = None
    # the smoke does not pin: its numbers mean nothing, and four Goldwire processes starting
    # on one core (gateway and services import at once) would be most of its minute
    if not args.no_pin and not plan.smoke and len(cpus) >= 2:
        server_cpus, client_cpus = {cpus[0]}, set(cpus[1:])
    return Config(
        clients=plan.clients, rates=plan.rates, duration=plan.duration,
        idle_connections=plan.idle, skip_ceiling=False, publish_via=args.publish_via,
        payload_bytes=max(0, args.payload_bytes), heartbeat=args.heartbeat,
        concurrency=max(1, args.concurrency), connect_timeout=30.0,
        client_procs=len(client_cpus) if client_cpus else 1, src_addrs=0,
        server_cpus=server_cpus, client_cpus=client_cpus, systems=plan.systems,
        smoke=plan.smoke, services=not args.no_services, max_misses=2,
        settle=0.0 if plan.smoke else 1.0,
    )


# --- the run ---------------------------------------------------------------------------------
class Run:
    """Runs the plan's scenarios, each system in turn, and keeps what they return."""

    def __init__(self, plan: Plan, cfg: Config, children: Children, redis_pid: int) -> None:
        self.plan, self.cfg, self.children, self.redis_pid = plan, cfg, children, redis_pid
        self.results: dict[str, Any] = empty_results()
        self.deadline = time.monotonic() + plan.time_limit
        self.pool: Pool | None = None

    async def attempt(self, scenario: str, system: str, coro_fn: Any) -> Any:
        """One system's part of one scenario; a failure is recorded and the run goes on."""
        if time.monotonic() > self.deadline:
            log(f"time limit reached: skipping {scenario} for {system}")
            self.results["skipped"].append({"scenario": scenario, "system": system})
            emit({"kind": "skipped", "scenario": scenario, "system": system})
            return None
        try:
            return await coro_fn()
        except Exception as exc:
            err = {"kind": "error", "scenario": scenario, "system": system,
                   "error": f"{type(exc).__name__}: {exc}"[:2000]}
            log(f"{scenario} / {system} failed: {err['error']}")
            emit(err)
            self.results["errors"].append(err)
            return None

    async def run(self) -> dict[str, Any]:
        cfg, plan, children = self.cfg, self.plan, self.children
        self.pool = pool = Pool([await WorkerProc.start(children, i, cfg.client_cpus)
                                 for i in range(cfg.client_procs)])
        res = self.results
        try:
            if "fanout" in plan.scenarios:
                for k, system in enumerate(plan.systems):
                    out = await self.attempt("fanout", system, lambda s=system, k=k: load_system(
                        s, cfg, children, pool, (self.redis_pid,), 1000 * (k + 1),
                        clients=plan.clients, rooms=[ROOM], rates=plan.rates))
                    res["fanout"] += out or []
            if "rooms" in plan.scenarios:
                names = [f"bench:room-{i}" for i in range(plan.rooms)]
                for k, system in enumerate(plan.systems):
                    out = await self.attempt("rooms", system, lambda s=system, k=k: load_system(
                        s, cfg, children, pool, (self.redis_pid,), 10_000 + 1000 * k,
                        clients=plan.room_clients, rooms=names, rates=plan.room_rates,
                        inflight=plan.room_inflight, kind="rooms"))
                    res["rooms"] += out or []
            if "small-room" in plan.scenarios:
                small = dataclasses.replace(cfg, duration=plan.small_duration)
                for k, system in enumerate(plan.systems):
                    out = await self.attempt("small-room", system, lambda s=system, k=k:
                                             load_system(s, small, children, pool,
                                                         (self.redis_pid,), 20_000 + 1000 * k,
                                                         clients=plan.small_clients,
                                                         rooms=[SMALL_ROOM],
                                                         rates=plan.small_rates,
                                                         kind="small-room"))
                    res["small-room"] += out or []
            if "storm" in plan.scenarios:
                runs = [(s, True) for s in plan.systems if s in STORM_SYSTEMS]
                if "goldwire" in plan.systems:
                    runs.insert(1, ("goldwire", False))
                for system, presence in runs:
                    out = await self.attempt("storm", system, lambda s=system, p=presence:
                                             storm_system(s, cfg, children, pool,
                                                          plan.storm_clients, p))
                    if out:
                        res["storm"].append(out)
            if "idle" in plan.scenarios:
                for system in plan.systems:
                    out = await self.attempt("idle", system, lambda s=system: idle_system(
                        s, cfg, children, pool, plan.idle))
                    if out:
                        res["idle"].append(out[0])
                        res["connect"].append(out[1])
            if "large-idle" in plan.scenarios and "goldwire" in plan.systems:
                out = await self.attempt("large-idle", "goldwire", self.large_idle)
                if out:
                    res["idle"].append(out[0])
                    res["connect"].append(out[1])
        finally:
            for w in pool.workers:
                with contextlib.suppress(Exception):
                    await w.call({"cmd": "exit"}, timeout=10)
                children.stop(w.proc, grace=5)
        return res

    async def large_idle(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Goldwire at the large count, with more client processes and source addresses."""
        assert self.pool is not None
        plan, cfg = self.plan, self.cfg
        nofile = raise_nofile()
        # the gateway holds every socket (plus its warm-up ones, Redis, its listeners)
        n = min(plan.large_idle, nofile - 200 - 300)
        if n < plan.large_idle:
            log(f"large idle: {n} connections, not {plan.large_idle}: one process may hold "
                f"{nofile} files here")
        need = math.ceil((n + 200) / min(SOCKETS_PER_WORKER, nofile - 100))
        base = len(self.pool.workers)
        extra = [await WorkerProc.start(self.children, base + i, cfg.client_cpus)
                 for i in range(max(0, need - base))]
        try:
            sources = [f"127.0.0.{i + 1}" for i in range(max(1, plan.large_sources))]
            return await idle_system("goldwire", cfg, self.children,
                                     Pool(self.pool.workers + extra), n,
                                     sources if len(sources) > 1 else [], kind="idle-large")
        finally:
            for w in extra:
                with contextlib.suppress(Exception):
                    await w.call({"cmd": "exit"}, timeout=10)
                self.children.stop(w.proc, grace=5)


# --- checks, machine, page ------------------------------------------------------------------
def harness_problems(plan: Plan, res: dict[str, Any]) -> list[str]:
    """What says the harness (not the speed) is broken: for `--smoke`'s exit status."""
    problems = [f"{e['scenario']} / {e['system']}: {e['error'][:300]}" for e in res["errors"]]
    problems += [f"{s['scenario']} / {s['system']}: skipped (time limit)"
                 for s in res["skipped"]]
    for kind in ("fanout", "rooms", "small-room"):
        if kind not in plan.scenarios:
            continue
        for system in plan.systems:
            steps = [r for r in res[kind] if r["system"] == system]
            if not steps and not any(e["system"] == system and e["scenario"] == kind
                                     for e in res["errors"]):
                problems.append(f"{kind} / {system}: no result")
            for r in steps:
                bad = {k: r[k] for k in ("lost", "duplicated", "out_of_order",
                                         "unexpected_closes", "connect_failures") if r[k]}
                if r["delivered"] == 0:
                    bad["delivered"] = 0
                if bad:
                    problems.append(f"{kind} / {system} at {r['rate']:g} msg/s: {bad}")
    for r in res["storm"]:
        if r["failed"] or not r["connected"]:
            problems.append(f"storm / {r['system']}: {r['failed']} of {r['clients']} failed: "
                            f"{r['errors']}")
    for r in res["idle"]:
        if r["failed"]:
            problems.append(f"idle / {r['system']}: {r['failed']} connections failed: "
                            f"{r['errors']}")
    return problems


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("goldwire", "websockets", "uvicorn", "uvloop", "httptools", "python-socketio",
                 "python-engineio", "fastapi", "redis", "hiredis", "pyjwt", "matplotlib"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                     timeout=5).stdout.strip().lstrip("v") or "?"
    for pkg in ("socket.io", "@socket.io/redis-adapter", "ioredis", "jsonwebtoken"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            meta = json.loads((NODE_DIR / "node_modules" / pkg / "package.json").read_text())
            out[pkg] = meta["version"]
    return out


def redis_version(url: str) -> str:
    import redis

    r = redis.Redis.from_url(url)
    try:
        info = r.info("server")
        return f"{info.get('redis_version', '?')}"
    except redis.RedisError:
        return "?"
    finally:
        r.close()


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        if dirty:
            commit += " + uncommitted changes"
    return {"cpu": model, "cpus": os.cpu_count(), "memory_gib": round(mem_gib, 1),
            "kernel": platform.release(), "commit": commit}


def fmt_load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def placement(cfg: Config) -> str:
    return (f"server processes on CPU {sorted(cfg.server_cpus)}, clients, Redis and "
            f"publisher on CPU {sorted(cfg.client_cpus)}" if cfg.server_cpus and
            cfg.client_cpus else "not pinned")


def page(plan: Plan, res: dict[str, Any], tgts: list[dict[str, Any]],
         meta: dict[str, Any], chart: str | None) -> str:
    m, v = meta["machine"], meta["versions"]
    lines = [
        f"## Latest run: {meta['date']}",
        "",
        f"`make bench` (`.venv/bin/python bench/run_all.py`), {meta['seconds']:.0f} s"
        + (" (smoke: tiny sizes, numbers not meaningful)" if plan.smoke else "") + ".",
        "",
        f"- Machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, Linux "
        f"{m['kernel']}; {meta['placement']}.",
        f"- Load average (1/5/15 min) at the start {fmt_load(meta['load_start'])}, at the end "
        f"{fmt_load(meta['load_end'])} (the machine was shared with other work).",
        f"- Code: {m['commit']}. Goldwire ran as: gateway"
        + "".join(f" + {s}" for s in meta["services"]) + " + Redis "
        f"{meta['redis_version']}, published to with `goldwire.client.RedisPublisher`.",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"- Sizes: fan-out {plan.clients:,} clients, steps "
        f"{', '.join(f'{r:g}' for r in plan.rates)} msg/s, {plan.duration:g} s each; "
        f"many rooms {plan.room_clients:,} clients in "
        f"{plan.rooms} rooms, {', '.join(f'{r:g}' for r in plan.room_rates)} msg/s; idle "
        f"{plan.idle:,} per system and {plan.large_idle:,} (asked) for Goldwire.",
        "",
    ]
    if chart:
        lines += [f"![Latency against delivered rate, fan-out to {plan.clients:,} clients in one "
                  f"room]({chart})", ""]
    lines += [report.render_md(report.target_table(tgts)), ""]
    for t in report.tables(res, plan.systems):
        lines += [report.render_md(t), ""]
    if res["errors"] or res["skipped"]:
        lines += ["### Problems", ""]
        lines += [f"- {e['scenario']} / {e['system']}: {e['error'][:500]}" for e in res["errors"]]
        lines += [f"- {s['scenario']} / {s['system']}: skipped (time limit)"
                  for s in res["skipped"]]
        lines.append("")
    lines += [
        "### How to rerun",
        "",
        "```",
        "make bench         # this page and the chart, about 12 minutes",
        "make bench-smoke   # every scenario tiny, under a minute (CI runs it)",
        ".venv/bin/python bench/run_all.py --scenarios fanout --systems goldwire,socketio,node "
        "--rates 20,40",
        ".venv/bin/python bench/fanout.py --help    # one scenario, more knobs",
        "```",
        "",
        "Each result is a JSON line on stdout (`--jsonl FILE` keeps them); the last line "
        "(`\"kind\":\"run\"`) holds the machine, versions and sizes, so `run_all.py "
        "--render FILE` rebuilds the tables, this page and the chart from a saved stdout.",
    ]
    if meta.get("rendered_later"):
        lines += ["", f"(Page rendered from the run's saved output: {meta['rendered_later']}.)"]
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------
def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        return render(args)
    plan = make_plan(args)
    cfg = make_config(args, plan)
    if "node" in plan.systems:  # install (or refuse, naming what is missing) before anything runs
        try:
            ensure_node_peer()
        except RuntimeError as exc:
            raise SystemExit(f"error: {exc}") from None
    raise_nofile()
    if cfg.client_cpus:
        os.sched_setaffinity(0, cfg.client_cpus)  # the publisher runs beside the clients
    started = time.monotonic()
    load_start = os.getloadavg()
    log(f"{'smoke' if plan.smoke else 'full'} run: systems {','.join(plan.systems)}, scenarios "
        f"{','.join(plan.scenarios)}; load average {fmt_load(load_start)}")
    jsonl = open(args.jsonl, "w") if args.jsonl else None  # closed after the summary
    if jsonl is not None:
        keep_results_in(jsonl)
    signal.signal(signal.SIGTERM, _sigterm)
    log_dir = tempfile.mkdtemp(prefix="goldwire-bench-")
    children = Children(log_dir)
    redis: RedisServer | None = None
    try:
        redis = RedisServer(die_with_parent=True).start()
        assert redis.pid is not None
        pin_all_threads(redis.pid, cfg.client_cpus)
        cfg.redis_url = redis.url
        res = asyncio.run(Run(plan, cfg, children, redis.pid).run())
        meta = {
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "seconds": round(time.monotonic() - started, 1), "load_start": load_start,
            "load_end": os.getloadavg(), "machine": machine(), "versions": versions(),
            "redis_version": redis_version(redis.url), "placement": placement(cfg),
            "services": sorted({s for r in res["fanout"] + res["rooms"]
                                for s in r.get("services", [])}),
        }
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        children.stop_all()
        if redis is not None:
            redis.stop()

    doc = None if args.doc == "-" else Path(args.doc) if args.doc else (
        Path(log_dir) / "benchmarks.md" if plan.smoke else DOC)
    conclude(plan, res, meta, doc)
    if jsonl is not None:
        jsonl.close()
    problems = harness_problems(plan, res)
    for p in problems:
        log(f"problem: {p}")
    log(f"done in {time.monotonic() - started:.1f} s (server logs in {log_dir})")
    if plan.smoke and time.monotonic() - started > 60:
        log(f"warning: the smoke run took {time.monotonic() - started:.0f} s, over its 60 s")
    if plan.smoke and problems:
        log("smoke FAILED: the harness is broken (see the problems above)")
        return 1
    return 1 if res["errors"] else 0


def conclude(plan: Plan, res: dict[str, Any], meta: dict[str, Any], doc: Path | None,
             emit_lines: bool = True) -> None:
    """The summary lines, the targets, the tables; then the page and the chart."""
    tgts = report.targets(res)
    if emit_lines:
        for s in plan.systems:
            best = report.best_sustained(res["fanout"], s)
            kept = report.best_kept_up(res["fanout"], s)
            emit({"kind": "sustained", "system": s, "rate": best["rate"] if best else None,
                  "deliveries_per_s": best["deliveries_per_s"] if best else None,
                  "p99_ms": best["p99_ms"] if best else None,
                  "server_cpu_us_per_delivery": (best["server_cpu_us_per_delivery"]
                                                 if best else None),
                  "kept_up_rate": kept["rate"] if kept else None,
                  "kept_up_deliveries_per_s": kept["deliveries_per_s"] if kept else None})
        for t in tgts:
            emit({"kind": "target", **{k: val for k, val in t.items() if k != "ok"}})
        emit({"kind": "run", "plan": dataclasses.asdict(plan), **meta})
    print()
    if plan.smoke:
        print("SMOKE RUN: tiny sizes; it checks the harness, its numbers mean nothing")
    print(report.render_text(report.target_table(tgts)))
    for t in report.tables(res, plan.systems):
        print()
        print(report.render_text(t))
    print(f"\nload average at the start {fmt_load(meta['load_start'])}, at the end "
          f"{fmt_load(meta['load_end'])}; {meta['seconds']:.0f} s")
    if doc is not None and res["fanout"]:
        chart = doc.parent / CHART_NAME
        report.write_chart(res["fanout"], plan.systems, chart,
                           f"Fan-out: {plan.clients:,} clients in one room"
                           + (" (smoke)" if plan.smoke else ""))
        report.write_doc(doc, page(plan, res, tgts, meta, CHART_NAME))
        log(f"wrote {doc} and {chart}")


def render(args: argparse.Namespace) -> int:
    """Rebuild the tables, the page and the chart from a run's saved stdout."""
    res = empty_results()
    meta: dict[str, Any] | None = None
    with open(args.render) as fh:
        for line in fh:
            if not line.startswith("{"):
                continue
            obj = json.loads(line)
            kind = obj.get("kind")
            if kind in ("fanout", "rooms", "small-room", "storm", "idle", "connect"):
                res[kind].append(obj)
            elif kind == "error":
                res["errors"].append(obj)
            elif kind == "skipped":
                res["skipped"].append(obj)
            elif kind == "run":
                meta = obj
    if meta is None:
        raise SystemExit(f"{args.render}: no `run` line (the run did not finish?)")
    plan = Plan(**meta["plan"])
    meta["load_start"], meta["load_end"] = tuple(meta["load_start"]), tuple(meta["load_end"])
    meta["rendered_later"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    doc = None if args.doc == "-" else Path(args.doc) if args.doc else DOC
    conclude(plan, res, meta, doc, emit_lines=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
