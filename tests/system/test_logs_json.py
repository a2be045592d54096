"""Real processes' logs (goldwire.service.logs): with LOG_FORMAT=json every line a
process writes to stderr is one JSON object naming its service and node, arq's and
uvicorn's lines included; with the defaults an idle service prints its start-up
lines and none of arq's per-job ones, however many cron ticks it runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Gateway, Presence, Service, token, until

pytestmark = pytest.mark.asyncio

# The two lines arq logs for every job run: `  0.01s → <job id>()` and `  0.01s ← <job id> ●`
# (not its start-up line, which names the cron jobs too).
ARQ_JOB_LINE = re.compile(r"\d+\.\d\ds [→←] ")


def sweeps(presence: Presence) -> float:
    """How many dead-gateway sweeps (one cron tick each) presence has run so far."""
    text = httpx.get(presence.http + "/metrics", timeout=2).text
    match = re.search(r"^goldwire_presence_sweeps_total(?:\{[^}]*\})? (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


def run_logged(service: Service, log: Path) -> None:
    with log.open("wb") as stderr:
        service.start(stderr=stderr)


async def test_every_json_line_parses_and_names_its_process(
        redis_server: Any, key_prefix: str, tmp_path: Path) -> None:
    settings = {"log_format": "json", "log_level": "debug"}
    presence = Presence(redis_server.url, key_prefix, presence_sweep_interval=1, **settings)
    gateway = Gateway(redis_server.url, key_prefix, node_id="gw-logs",
                      presence_url=presence.http, **settings)
    logs = {"presence": tmp_path / "presence.log", "gateway": tmp_path / "gateway.log"}
    try:
        run_logged(presence, logs["presence"])
        run_logged(gateway, logs["gateway"])
        # A request the gateway forwards to presence: its id is echoed, and the lines the
        # gateway logs meanwhile (httpx's, at debug) carry it.
        async with httpx.AsyncClient(base_url=gateway.http, timeout=10) as http:
            resp = await http.get("/v2/sync/presence", params={"rooms": "doc:1"},
                                  headers={"Authorization": f"Bearer {token()}",
                                           "X-Request-ID": "req-logs-1"})
            assert resp.status_code == 200, resp.text
            assert resp.headers["x-request-id"] == "req-logs-1"
            made = (await http.get("/healthz")).headers["x-request-id"]
            assert re.fullmatch(r"[0-9a-f]{32}", made)
        await until(lambda: sweeps(presence) >= 2)  # cron ticks have been logged (at debug)
    finally:
        presence.terminate()
        gateway.terminate()  # shutdown lines too
    lines = {kind: [json.loads(line) for line in path.read_text().splitlines()]
             for kind, path in logs.items()}  # a line that is not JSON fails here
    for kind, parsed in lines.items():
        assert parsed, kind
        assert {line["service"] for line in parsed} == {kind}
        assert all({"ts", "level", "logger", "message", "node"} <= line.keys()
                   for line in parsed)
    assert {line["node"] for line in lines["gateway"]} == {"gw-logs"}
    assert any(line["logger"] == "uvicorn.error" for line in lines["gateway"])
    job_lines = [line for line in lines["presence"]
                 if line["logger"] == "arq.worker" and ARQ_JOB_LINE.search(line["message"])]
    assert job_lines and {line["level"] for line in job_lines} == {"debug"}
    forwarded = [line for line in lines["gateway"] if line.get("request_id") == "req-logs-1"]
    assert forwarded and all(line["logger"].startswith(("httpx", "httpcore"))
                             for line in forwarded), forwarded


async def test_an_idle_service_by_default_prints_no_arq_job_line(
        redis_server: Any, key_prefix: str, tmp_path: Path) -> None:
    presence = Presence(redis_server.url, key_prefix, presence_sweep_interval=1)
    for name in ("LOG_LEVEL", "LOG_FORMAT"):  # the defaults, as `make run` has them
        presence.env.pop(name, None)
    log = tmp_path / "presence.log"
    try:
        run_logged(presence, log)
        # Waits for ticks, not for a guessed time: five sweeps are five cron runs (and
        # the pending-leaves job runs every second beside them), each once two lines.
        await until(lambda: sweeps(presence) >= 5)
        text = log.read_text()
    finally:
        presence.terminate()
    lines = text.splitlines()
    stamp = r"\d\d:\d\d:\d\d\.\d{3} presence"
    assert any(re.match(rf"{stamp} INFO goldwire\.presence: presence consumer \S+ started$", line)
               for line in lines), text
    assert any(re.match(rf"{stamp} INFO uvicorn\.error: ", line) for line in lines), text
    arq_job = [line for line in lines if "arq.worker" in line and ARQ_JOB_LINE.search(line)]
    assert arq_job == [], text
    assert len(lines) < 20, text
