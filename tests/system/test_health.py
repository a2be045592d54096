"""The whole stack's health on real processes: the gateway's `/readyz?deep=1` and
`goldwire status` with every service up, then with one killed."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Activity, Gateway, Presence, Sessions, until

SERVICES = ("presence", "sessions", "activity")


@pytest.fixture(scope="module")
def stack(redis_server: Any) -> Iterator[dict[str, Any]]:
    prefix = "gwtest:health-" + uuid.uuid4().hex[:8]  # gwtest: like every test prefix
    started: dict[str, Any] = {}
    try:
        for kind in (Presence, Sessions, Activity):
            started[kind.kind] = kind(redis_server.url, prefix).start()
        started["gateway"] = Gateway(
            redis_server.url, prefix, presence_url=started["presence"].http,
            sessions_url=started["sessions"].http, activity_url=started["activity"].http).start()
        yield started
    finally:
        for service in reversed(started.values()):
            service.terminate()


def deep(gateway: Gateway) -> httpx.Response:
    return httpx.get(gateway.http + "/readyz", params={"deep": "1"}, timeout=10)


def goldwire_status(service: Any, *options: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "goldwire"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "goldwire.cli"]
    return subprocess.run([*argv, "status", "--url", service.http, *options],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_every_service_ready_with_its_lag(stack: dict[str, Any]) -> None:
    gateway = stack["gateway"]
    resp = deep(gateway)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["ready"] is True
    assert answer["gateway"]["ready"] is True
    assert set(answer["services"]) == set(SERVICES)
    for name in SERVICES:
        assert answer["services"][name]["ready"] is True, answer
        assert answer["services"][name]["checks"]["consumer"] is True
        group = answer["stream"]["groups"][name]  # each service's group on the event stream
        assert isinstance(group["lag"], int) and isinstance(group["pending"], int), group
        assert group["consumers"] >= 1
    # Plain /readyz is the gateway's own answer, as before: no other process asked.
    plain = httpx.get(gateway.http + "/readyz", timeout=5)
    assert plain.status_code == 200
    assert plain.json() == {"ready": True, "checks": {"pubsub": True, "redis": True}}

    result = goldwire_status(gateway)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "READY", "LAG", "DETAIL"]
    for name in ("gateway", *SERVICES):
        assert any(line.split()[:2] == [name, "yes"] for line in lines), result.stdout
    assert lines[-1] == "all ready"

    as_json = goldwire_status(gateway, "--json")
    assert as_json.returncode == 0
    assert set(json.loads(as_json.stdout)["services"]) == set(SERVICES)


def test_status_exits_2_for_a_url_that_is_not_a_gateway(stack: dict[str, Any]) -> None:
    result = goldwire_status(stack["presence"])  # answers /readyz, but only for itself
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not a Goldwire gateway?" in result.stderr and result.stdout == ""


async def test_a_killed_service_is_named_by_the_gateway_and_by_status(
        stack: dict[str, Any]) -> None:
    gateway, sessions = stack["gateway"], stack["sessions"]
    sessions.kill()
    try:
        def sessions_down() -> dict[str, Any] | None:
            resp = deep(gateway)
            answer = resp.json()
            if resp.status_code == 503 and not answer["services"]["sessions"]["ready"]:
                return answer
            return None

        answer = await until(sessions_down)
        assert answer["ready"] is False
        assert answer["services"]["sessions"]["error"].startswith("unreachable")
        assert answer["services"]["presence"]["ready"] is True
        assert answer["services"]["activity"]["ready"] is True
        # The stopped service's group stays on the stream: its lag is still reported.
        assert isinstance(answer["stream"]["groups"]["sessions"]["pending"], int)

        result = goldwire_status(gateway)
        assert result.returncode == 1, result.stdout + result.stderr
        row = next(line for line in result.stdout.splitlines() if line.startswith("sessions"))
        assert row.split()[1] == "NO" and "unreachable" in row
        assert result.stdout.splitlines()[-1] == "not ready: sessions"
    finally:
        sessions.start()
    # Restarted: ready again once the gateway's cached answer (about a second) is renewed.
    await until(lambda: deep(gateway).status_code == 200)


def test_status_exits_2_with_one_line_when_the_gateway_does_not_answer() -> None:
    unused = Gateway("redis://127.0.0.1:1/0", "gwtest:none")  # never started: nothing listens
    result = goldwire_status(unused)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "does not answer" in result.stderr
    assert "Traceback" not in result.stderr
