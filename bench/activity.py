"""Activity benchmark: one worker's events/s end to end, lag under a steady load, and the
analytics summary over 30 days of roll-ups.

    .venv/bin/python bench/activity.py           # 200,000 events; 20,000/s for 30 s; 30 days
    .venv/bin/python bench/activity.py --smoke   # small, under a minute
    .venv/bin/python bench/activity.py --events 500000 --rate 25000 --duration 60

Everything runs on loopback with a private Redis (`RedisServer`) and one real activity
process (`python -m goldwire.cli activity`), both stopped at the end, also on Ctrl-C,
SIGTERM, an error or the overall `--timeout`.

1. Backlog. The gateway event stream is filled with `--events` synthetic, valid
   gateway events: per connection, in order, connect, join, 6 publishes (55% of all
   events), a status change, leave and disconnect; 2,000 users, 300 rooms, about 500
   connections open at any time, times within the last hour, in time order as
   gateways write them. Then the activity process starts and its
   `goldwire_activity_events_seen_total` is sampled until every event is in; the
   rate is taken between the first and the last sample. "End to end" means each
   event was read with XREADGROUP, recorded (history, counters, summaries, live
   state, in RECORD's Lua) and acknowledged. The totals are then checked: the
   analytics summary counts exactly `--events`.
2. Steady load. This process XADDs events at `--rate` per second for `--duration` s
   (a batch every 10 ms, or all that is due when a round trip took longer) while the
   worker records them; the group's lag is sampled every 0.5 s. Bounded means the
   lag never exceeds what arrives in `--max-lag-seconds` (2 s) and returns to 0 when
   the load stops.
3. Summary over 30 days. A second tenant gets 30 days of events (every hour, all rooms,
   all users), rolled up by the worker's arq job; then `GET /v1/analytics/summary` for
   the 30 days is timed `--queries` times from this process (HTTP included).

Results are JSON lines on stdout (`"kind"`: `backlog`, `steady`, `summary_30d`,
`target`), then PASS/MISS per target of issue 5: at least 20,000 events/s with the lag
bounded; the 30-day summary answers in under 50 ms (p95). CPU seconds of the worker and
of Redis are reported with each part. Progress goes to stderr. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
API_KEY = "bench-api-key"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_EVENTS_PER_S = 20_000.0
TARGET_SUMMARY_MS = 50.0
HOUR, DAY = 3_600_000, 86_400_000


def log(msg: str) -> None:
    print(f"[activity-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, separators=(",", ":")), flush=True)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process; 0 once it is gone."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rpartition(b")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


# --- events ---------------------------------------------------------------------------------
class Generator:
    """Valid gateway events, each connection's in order, connections interleaved."""

    def __init__(self, tenant: str, users: int = 2000, rooms: int = 300, seed: int = 5) -> None:
        self.tenant, self.users, self.rooms = tenant.encode(), users, rooms
        self.rng = random.Random(seed)
        self.n = 0
        self.conns = 0

    def connection(self, t0: int, spacing: int = 50) -> list[dict[bytes, bytes]]:
        """One connection's events: connect, join, 6 publishes, status, leave, disconnect."""
        self.conns += 1
        conn = f"bench.{self.conns}".encode()
        user = f"user{self.rng.randrange(self.users)}".encode()
        room = f"doc:{self.rng.randrange(self.rooms)}".encode()
        kinds = [b"connect", b"join", *[b"publish"] * 6, b"status", b"leave", b"disconnect"]
        out = []
        for seq, kind in enumerate(kinds, 1):
            self.n += 1
            ts = str(t0 + seq * spacing).encode()
            ev = {b"id": b"bench-1-%d" % self.n, b"kind": kind, b"node": b"bench",
                  b"ts": ts, b"conn": conn, b"seq": str(seq).encode(), b"user": user,
                  b"tenant": self.tenant}
            if kind in (b"join", b"leave", b"publish"):
                ev[b"room"] = room
            if kind == b"publish":
                ev[b"type"] = b"user_message" if seq % 3 else b"document_update"
                ev[b"offset"] = ts + b"-0"
            elif kind == b"status":
                ev[b"status"] = b"away"
            elif kind == b"disconnect":
                ev[b"rooms"] = b"[]"
            out.append(ev)
        return out

    def live(self, n: int, now_ms: int, open_conns: int = 500) -> list[dict[bytes, bytes]]:
        """n events stamped now, from about `open_conns` connections in progress."""
        active = self.__dict__.setdefault("_active", [])
        out = []
        ts = str(now_ms).encode()
        for _ in range(n):
            while len(active) < open_conns:
                active.append(self.connection(now_ms))
            i = self.rng.randrange(len(active))
            ev = active[i].pop(0)
            ev[b"ts"] = ts
            out.append(ev)
            if not active[i]:
                active[i] = active[-1]
                active.pop()
        return out

    def batch(self, n: int, t_from: int, t_to: int,
              open_conns: int = 0) -> list[dict[bytes, bytes]]:
        """About n events from connections starting between t_from and t_to, in time
        order as a gateway writes them (each connection's events stay in order). With
        `open_conns`, events of a connection are spaced so that about that many
        connections are open at any time (else 50 ms apart)."""
        conns = max(1, n // 11)
        spacing = max(50, (t_to - t_from) * open_conns // conns // 11)
        out = [ev for _ in range(conns)
               for ev in self.connection(self.rng.randrange(t_from, max(t_from + 1,
                                                                         t_to - 1000)),
                                         spacing)]
        out.sort(key=lambda ev: int(ev[b"ts"]))  # stable: a connection's order is kept
        return out


class RawPipe:
    """XADDs as fast as this process can make them: commands packed by hiredis (C), one
    write per batch, replies parsed by hiredis. redis-py's pure-Python command packing
    would make the producer, not the worker, the bottleneck of the steady part."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import hiredis

        self.reader, self.writer = reader, writer
        self.parser = hiredis.Reader()
        self.pack = hiredis.pack_command

    @classmethod
    async def open(cls, url: str) -> RawPipe:
        from urllib.parse import urlparse

        u = urlparse(url)
        return cls(*await asyncio.open_connection(u.hostname, u.port))

    async def send(self, commands: list[tuple[Any, ...]]) -> None:
        self.writer.write(b"".join(self.pack(c) for c in commands))
        await self.writer.drain()
        got = 0
        while got < len(commands):
            reply = self.parser.gets()
            if reply is False:
                self.parser.feed(await self.reader.read(65536))
                continue
            if isinstance(reply, Exception):
                raise reply
            got += 1

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def partitions(redis: Any, keys: Any) -> int:
    """The deployment's event partition count (recorded now if no worker did yet)."""
    from goldwire.store.partitions import agree_on_partitions

    return await agree_on_partitions(redis, keys, None)


async def xadd_all(redis: Any, keys: Any, events: list[dict[bytes, bytes]]) -> None:
    """Each event to the partition a gateway would write it to."""
    from goldwire.store.partitions import stream_for_event

    count = await partitions(redis, keys)
    for i in range(0, len(events), 2000):
        pipe = redis.pipeline(transaction=False)
        for ev in events[i:i + 2000]:
            pipe.xadd(stream_for_event(keys, ev, count), ev, maxlen=5_000_000,
                      approximate=True)
        await pipe.execute()


# --- the activity process -------------------------------------------------------------------
class Worker:
    def __init__(self, redis_url: str, prefix: str, log_dir: str, **settings: Any) -> None:
        from goldwire.cli.procutil import free_port, parent_death_signal

        self.port = free_port()
        env = dict(os.environ)
        env.update({"REDIS_URL": redis_url, "GOLDWIRE_KEY_PREFIX": prefix, "API_KEYS": API_KEY,
                    "ACTIVITY_PORT": str(self.port), "LOG_LEVEL": "warning"})
        env.update({k.upper(): str(v) for k, v in settings.items()})
        self.log_path = os.path.join(log_dir, "activity.log")
        with open(self.log_path, "ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "goldwire.cli", "activity"], cwd=REPO, env=env,
                stdout=fh, stderr=fh, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=parent_death_signal(signal.SIGTERM))
        self.url = f"http://127.0.0.1:{self.port}"

    def tail(self) -> str:
        with contextlib.suppress(OSError), open(self.log_path, "rb") as fh:
            return fh.read()[-2000:].decode(errors="replace")
        return ""

    async def wait_ready(self, http: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"activity exited ({self.proc.returncode}):\n{self.tail()}")
            with contextlib.suppress(Exception):
                if (await http.get(self.url + "/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError("activity did not start:\n" + self.tail())

    async def metrics(self, http: Any) -> dict[str, float]:
        text = (await http.get(self.url + "/metrics")).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.split()
                out[name.removeprefix("goldwire_activity_")] = float(value)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def group_state(redis: Any, keys: Any, group: str) -> tuple[int, int]:
    """(lag, pending) of the activity group over every partition."""
    from goldwire.store.partitions import group_backlog

    pending, lag = await group_backlog(redis, keys, group, await partitions(redis, keys))
    return int(lag or 0), pending


# --- the parts ------------------------------------------------------------------------------
async def part_backlog(args: Any, redis: Any, worker_factory: Any, keys: Any,
                       redis_pid: int | None) -> tuple[dict[str, Any], Any]:
    import httpx

    gen = Generator("bench")
    now = int(time.time() * 1000)
    events = gen.batch(args.events, now - HOUR - 60_000, now - 60_000, open_conns=500)
    log(f"backlog: writing {len(events):,} events")
    await xadd_all(redis, keys, events)
    http = httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {API_KEY}"})
    worker = worker_factory()
    await worker.wait_ready(http)
    cpu0, rcpu0 = cpu_seconds(worker.proc.pid), cpu_seconds(redis_pid)
    samples: list[tuple[float, float]] = []
    deadline = time.monotonic() + args.timeout
    while True:
        m = await worker.metrics(http)
        seen = m["events_seen_total"]
        samples.append((time.monotonic(), seen))
        if seen >= len(events):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"backlog not recorded in time ({seen:.0f}/{len(events)})")
        await asyncio.sleep(0.2)
    cpu1, rcpu1 = cpu_seconds(worker.proc.pid), cpu_seconds(redis_pid)
    first = next(i for i, (_, n) in enumerate(samples) if n > 0)
    (t0, n0), (t1, n1) = samples[first], samples[-1]
    # the first sample with events in already holds some: take the rate between samples
    rate = (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")
    lag, pending = await group_state(redis, keys, keys.consumer_group("activity"))
    # correctness: every event counted once in the roll-ups
    summary: dict[str, Any] = {}
    for _ in range(100):
        resp = await http.get(worker.url + "/v1/analytics/summary",
                              params={"tenant": "bench", "from": now - 2 * HOUR, "to": now})
        summary = resp.json()
        if summary.get("events") == len(events):
            break
        await asyncio.sleep(0.2)
    m = await worker.metrics(http)
    result = {"kind": "backlog", "events": len(events), "seconds": round(t1 - t0, 2),
              "events_per_s": round(rate), "recorded": int(m["events_recorded_total"]),
              "summary_events": summary.get("events"), "lag_end": lag, "pending_end": pending,
              "worker_cpu_s": round(cpu1 - cpu0, 2), "redis_cpu_s": round(rcpu1 - rcpu0, 2)}
    emit(result)
    return result, (worker, http)


async def part_steady(args: Any, redis: Any, worker: Any, http: Any, keys: Any,
                      redis_pid: int | None) -> dict[str, Any]:
    gen = Generator("bench", seed=11)
    from goldwire.store.partitions import stream_for_event

    group = keys.consumer_group("activity")
    count = await partitions(redis, keys)
    total = int(args.rate * args.duration)
    lags: list[int] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            lags.append((await group_state(redis, keys, group))[0])
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    def xadd(ev: dict[bytes, bytes]) -> tuple[bytes, ...]:
        return (b"XADD", stream_for_event(keys, ev, count).encode(), b"MAXLEN", b"~",
                b"5000000", b"*", *[x for kv in ev.items() for x in kv])
    raw = await RawPipe.open(args.redis_url)
    cpu0, rcpu0 = cpu_seconds(worker.proc.pid), cpu_seconds(redis_pid)
    own0 = time.process_time()
    log(f"steady: {args.rate:,.0f} events/s for {args.duration:.0f} s")
    start = time.monotonic()
    per_tick = max(1, int(args.rate / 100))
    sent = 0
    while sent < total:
        delay = start + sent / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        # whatever is due by now (more than a tick when a round trip took long)
        n = min(total - sent, max(per_tick, int((time.monotonic() - start) * args.rate) - sent))
        await raw.send([xadd(ev) for ev in gen.live(n, int(time.time() * 1000))])
        sent += n
    produced_s = time.monotonic() - start
    await raw.close()
    drain_start = time.monotonic()
    while (await group_state(redis, keys, group))[0] > 0:
        if time.monotonic() - drain_start > 60:
            break
        await asyncio.sleep(0.1)
    drain_s = time.monotonic() - drain_start
    stop.set()
    await sampler
    cpu1, rcpu1 = cpu_seconds(worker.proc.pid), cpu_seconds(redis_pid)
    lag, pending = await group_state(redis, keys, group)
    achieved = sent / produced_s
    max_lag = max(lags) if lags else 0
    result = {"kind": "steady", "rate_target": args.rate, "rate_achieved": round(achieved),
              "seconds": round(produced_s, 2), "events": sent, "max_lag": max_lag,
              "max_lag_s": round(max_lag / args.rate, 2), "drain_s": round(drain_s, 2),
              "lag_end": lag, "pending_end": pending,
              "worker_cpu_s": round(cpu1 - cpu0, 2), "redis_cpu_s": round(rcpu1 - rcpu0, 2),
              "producer_cpu_s": round(time.process_time() - own0, 2)}
    emit(result)
    return result


async def part_summary(args: Any, redis: Any, worker: Any, http: Any,
                       keys: Any) -> dict[str, Any]:
    gen = Generator("bench30", users=2000, rooms=300, seed=17)
    now = int(time.time() * 1000)
    start = now - 30 * DAY + HOUR  # inside the 30-day retention
    events: list[dict[bytes, bytes]] = []
    for h in range(30 * 24 - 1):
        t = start + h * HOUR
        events += gen.batch(args.per_hour, t, t + HOUR - 2000)
    log(f"summary: recording 30 days, {len(events):,} events")
    await xadd_all(redis, keys, events)
    want = None
    for _ in range(600):
        m = await worker.metrics(http)
        lag, _ = await group_state(redis, keys, keys.consumer_group("activity"))
        if lag == 0:
            resp = await http.get(worker.url + "/v1/analytics/summary",
                                  params={"tenant": "bench30", "from": now - 30 * DAY,
                                          "to": now})
            want = resp.json()
            if want.get("events") == len(events):
                break
        await asyncio.sleep(0.2)
    del m
    params = {"tenant": "bench30", "from": now - 30 * DAY, "to": now}
    times = []
    for _ in range(args.queries):
        t0 = time.perf_counter()
        resp = await http.get(worker.url + "/v1/analytics/summary", params=params)
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, resp.text
    body = resp.json()
    units = len(body["series"])
    result = {"kind": "summary_30d", "events": len(events), "counted": body["events"],
              "queries": len(times), "p50_ms": round(percentile(times, 50), 2),
              "p95_ms": round(percentile(times, 95), 2),
              "max_ms": round(max(times), 2), "days": units,
              "top_rooms": len(body["top_rooms"]), "active_users": body["active_users"],
              "active_users_exact": body["active_users_exact"]}
    emit(result)
    return result


async def run(args: Any) -> int:
    from redis.asyncio import Redis

    from goldwire.cli.redis_server import RedisServer
    from goldwire.protocol.keys import Keys

    log_dir = tempfile.mkdtemp(prefix="activity-bench-")
    server = RedisServer(die_with_parent=True).start()
    keys = Keys("bench")
    redis = Redis.from_url(server.url)
    worker = None
    http = None
    try:
        def factory() -> Worker:
            return Worker(server.url, "bench", log_dir, activity_sweep_interval=0,
                          activity_ready_max_lag=10**9)

        args.redis_url = server.url
        backlog, (worker, http) = await part_backlog(args, redis, factory, keys, server.pid)
        steady = await part_steady(args, redis, worker, http, keys, server.pid)
        summary = await part_summary(args, redis, worker, http, keys)
        bounded = (steady["max_lag_s"] <= args.max_lag_seconds and steady["lag_end"] == 0
                   and steady["rate_achieved"] >= 0.95 * args.rate)
        results = [
            ("events_per_s", backlog["events_per_s"], f">= {TARGET_EVENTS_PER_S:,.0f}",
             backlog["events_per_s"] >= TARGET_EVENTS_PER_S
             and backlog["summary_events"] == backlog["events"]),
            ("lag_bounded", f"max {steady['max_lag']} ({steady['max_lag_s']} s) at "
             f"{steady['rate_achieved']}/s", f"<= {args.max_lag_seconds} s at {args.rate:,.0f}/s",
             bounded),
            ("summary_30d_p95_ms", summary["p95_ms"], f"< {TARGET_SUMMARY_MS}",
             summary["p95_ms"] < TARGET_SUMMARY_MS and summary["counted"] == summary["events"]),
        ]
        for name, value, target, ok in results:
            emit({"kind": "target", "name": name, "value": value, "target": target,
                  "pass": bool(ok)})
        for name, value, target, ok in results:
            print(f"{'PASS' if ok else 'MISS'}  {name}: {value} (target {target})", flush=True)
        return 0 if all(ok for *_, ok in results) else 1
    finally:
        if http is not None:
            await http.aclose()
        if worker is not None:
            worker.stop()
        await redis.aclose()
        server.stop()
        log(f"stopped everything (logs in {log_dir})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--max-lag-seconds", type=float, default=2.0)
    parser.add_argument("--per-hour", type=int, default=100,
                        help="events per hour in the 30 days of part 3")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600, help="overall limit, seconds")
    parser.add_argument("--smoke", action="store_true", help="tiny: under a minute")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.rate, args.duration = 20_000, 5_000, 4
        args.per_hour, args.queries, args.timeout = 11, 20, 55

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)

    async def bounded() -> int:
        return await asyncio.wait_for(run(args), args.timeout)

    try:
        return asyncio.run(bounded())
    except (KeyboardInterrupt, TimeoutError) as exc:
        log(f"stopped: {type(exc).__name__}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
