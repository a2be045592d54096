"""The `goldwire` command: token minting, help, and the `up` supervisor."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from goldwire.cli import main
from goldwire.cli.redis_server import redis_answers
from goldwire.cli.services import SERVICE_KINDS, ServiceKind, available_kinds
from goldwire.cli.supervisor import Supervisor
from goldwire.cli.tokens import mint_token, split_patterns
from goldwire.cli.up import run_up
from tests.support import free_port, until

# 32+ bytes: PyJWT warns about shorter HS256 keys.
SECRET = "test-secret-0123456789abcdef-0123456789"


def _goldwire_argv() -> list[str]:
    script = Path(sys.executable).parent / "goldwire"
    return [str(script)] if script.exists() else [sys.executable, "-m", "goldwire.cli"]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_goldwire_argv(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


# -- goldwire token ----------------------------------------------------------


def test_token_command_prints_a_token_with_all_claims():
    env = {**os.environ, "JWT_AUDIENCE": "goldwire", "JWT_ISSUER": "goldleaves-dev"}
    env.pop("JWT_SECRET", None)
    result = _run(
        [
            "token", "--user", "u-1", "--name", "Ann", "--tenant", "t-9",
            "--rooms", "doc:*, chat:*", "--publish", "doc:*", "--ttl", "600",
            "--secret", SECRET,
        ],
        env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1  # the token only
    claims = jwt.decode(
        lines[0], SECRET, algorithms=["HS256"], audience="goldwire", issuer="goldleaves-dev"
    )
    assert claims["sub"] == "u-1"
    assert claims["name"] == "Ann"
    assert claims["tenant"] == "t-9"
    assert claims["rooms"] == ["doc:*", "chat:*"]
    assert claims["publish"] == ["doc:*"]
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 60


def test_token_command_reads_secret_from_env_and_omits_unset_claims():
    out = io.StringIO()
    environ = {"JWT_SECRET": SECRET, "JWT_AUDIENCE": "", "JWT_ISSUER": ""}
    assert main(["token", "--user", "u-2"], environ=environ, out=out) == 0
    claims = jwt.decode(out.getvalue().strip(), SECRET, algorithms=["HS256"])
    assert set(claims) == {"sub", "rooms", "publish", "iat", "exp"}
    assert claims["rooms"] == [] and claims["publish"] == []


def test_token_command_without_secret_fails(capsys):
    assert main(["token", "--user", "u-3"], environ={}, out=io.StringIO()) == 2
    assert "JWT_SECRET" in capsys.readouterr().err


def test_help_lists_subcommands():
    result = _run(["--help"], dict(os.environ))
    assert result.returncode == 0, result.stderr
    for command in ("gateway", "token", "up"):
        assert command in result.stdout


def test_mint_token_signs_with_an_asymmetric_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    private_key = ec.generate_private_key(ec.SECP256R1())
    token = mint_token(None, "u-4", rooms="a:*,b:*", algorithm="ES256", key=private_key)
    claims = jwt.decode(token, private_key.public_key(), algorithms=["ES256"])
    assert claims["rooms"] == ["a:*", "b:*"]


def test_mint_token_rejects_missing_key_and_bad_ttl():
    with pytest.raises(ValueError):
        mint_token("", "u")
    with pytest.raises(ValueError):
        mint_token("s", "u", ttl=0)


def test_split_patterns():
    assert split_patterns(" doc:*, ,chat:* ") == ["doc:*", "chat:*"]
    assert split_patterns(["doc:*", "a,b"]) == ["doc:*", "a", "b"]
    assert split_patterns(None) == []


# -- service kinds and the supervisor -----------------------------------------


def test_service_kinds_are_started_only_when_their_package_exists():
    kinds = available_kinds()
    assert kinds == [kind for kind in SERVICE_KINDS if kind in kinds]  # declaration order
    assert "gateway" in [kind.name for kind in kinds]
    missing = ServiceKind("nope", "goldwire.no_such_service")
    assert available_kinds([missing]) == []
    assert ServiceKind("gateway", "goldwire.gateway").argv("py") == [
        "py", "-m", "goldwire.cli", "gateway",
    ]  # fmt: skip


def test_supervisor_escalates_to_sigkill_after_grace(tmp_path):
    ready = tmp_path / "ready"
    stubborn = (
        "import pathlib, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(60)\n"
    )
    supervisor = Supervisor(out=io.StringIO())
    polite = supervisor.start("polite", [sys.executable, "-c", "import time; time.sleep(60)"], {})
    stubborn_child = supervisor.start("stubborn", [sys.executable, "-c", stubborn], {})
    asyncio.run(until(ready.exists, timeout=20, interval=0.02))  # the child ignores SIGTERM now
    assert supervisor.first_exited() is None
    supervisor.shutdown(grace=0.5, poll=0.05)
    assert polite.proc.returncode == -signal.SIGTERM
    assert stubborn_child.proc.returncode == -signal.SIGKILL


@dataclass(frozen=True)
class _Sleeper:
    """A stand-in service kind: any object with `name` and `argv()` will do."""

    name: str = "sleeper"

    def argv(self) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(60)"]


def test_up_reports_a_dead_child_and_exits_non_zero(redis_server):
    out = io.StringIO()
    # `goldwire nope` is not a subcommand, so the child exits with code 2 at once.
    environ = {**os.environ, "REDIS_URL": redis_server.url, "JWT_SECRET": "", "API_KEYS": ""}
    code = run_up(environ, out=out, kinds=[ServiceKind("nope", "goldwire.cli")], grace=2.0)
    text = out.getvalue()
    assert code == 1
    assert "(existing)" in text
    assert "nope" in text and "exited unexpectedly with code 2" in text
    secret = next(line.split()[1] for line in text.splitlines() if line.startswith("JWT_SECRET:"))
    token = next(line.split()[2] for line in text.splitlines() if line.startswith("Dev token:"))
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["sub"] == "dev" and claims["name"] == "Developer"
    assert claims["rooms"] == ["*"] and claims["publish"] == ["*"]
    assert "API key:     dev-" in text


def test_up_starts_private_redis_and_stops_cleanly_on_sigterm():
    out = io.StringIO()
    # Port 1 never answers, so `up` must start (and later stop) its own Redis.
    environ = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0", "JWT_SECRET": SECRET}
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        code = run_up(environ, out=out, kinds=[_Sleeper()], grace=5.0, poll=0.05)
    finally:
        timer.cancel()
    text = out.getvalue()
    assert code == 0, text
    assert "(private" in text and "shutting down" in text
    assert "stopping sleeper" in text
    assert "JWT_SECRET:" not in text  # only generated secrets are printed
    private_url = next(line.split()[1] for line in text.splitlines() if line.startswith("Redis:"))
    assert not redis_answers(private_url, timeout=0.3)


# -- goldwire up: readiness and URLs -------------------------------------------


@dataclass(frozen=True)
class _Stub:
    """A stand-in process under a real kind's name: `up` waits for that kind's /readyz."""

    name: str
    code: str = "import time; time.sleep(60)"

    def argv(self) -> list[str]:
        return [sys.executable, "-c", self.code]


def test_up_prints_no_url_for_a_gateway_that_died_before_it_was_ready(redis_server):
    out = io.StringIO()
    environ = {**os.environ, "REDIS_URL": redis_server.url, "JWT_SECRET": SECRET,
               "GATEWAY_PORT": str(free_port())}  # nothing will listen there
    code = run_up(environ, out=out, kinds=[_Stub("gateway", "raise SystemExit(3)")], grace=2.0)
    text = out.getvalue()
    assert code == 1
    assert "Waiting:     gateway" in text and "exited unexpectedly with code 3" in text
    assert "Socket:" not in text and "Ready in" not in text
    assert "Dev token:" in text  # the credentials do not depend on readiness


def test_up_names_what_is_still_not_ready(redis_server):
    out = io.StringIO()
    environ = {**os.environ, "REDIS_URL": redis_server.url, "JWT_SECRET": SECRET,
               "PRESENCE_URL": f"http://127.0.0.1:{free_port()}"}  # never answers
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        code = run_up(environ, out=out, kinds=[_Stub("presence")], grace=2.0, poll=0.05,
                      ready_warning=0.0)
    finally:
        timer.cancel()
    text = out.getvalue()
    assert code == 0, text
    assert text.count("not ready yet: presence") == 1  # said once, not every poll
    assert "Ready in" not in text


def test_up_waits_for_every_service_then_prints_every_url(redis_server):
    ports = {kind: free_port() for kind in ("GATEWAY", "PRESENCE", "SESSIONS", "ACTIVITY")}
    env = {**os.environ, "REDIS_URL": redis_server.url, "JWT_SECRET": SECRET,
           "API_KEYS": "up-test-key", "LOG_LEVEL": "warning",
           "GOLDWIRE_KEY_PREFIX": "gwup:" + os.urandom(4).hex(),
           "GOLDWIRE_DEMO_URL": "http://127.0.0.1:8080",
           **{f"{kind}_PORT": str(port) for kind, port in ports.items()}}
    for name in ("PRESENCE_URL", "SESSIONS_URL", "ACTIVITY_URL", "GATEWAY_HOST"):
        env.pop(name, None)
    proc = subprocess.Popen([*_goldwire_argv(), "up"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        asyncio.run(until(lambda: any(line.startswith("Ready in") for line in lines),
                          timeout=90))
        text = "".join(lines)
        gw = f"http://127.0.0.1:{ports['GATEWAY']}"
        assert f"Socket:      ws://127.0.0.1:{ports['GATEWAY']}/ws\n" in text
        assert f"Gateway:     {gw}  (docs: {gw}/docs)\n" in text
        for kind in ("PRESENCE", "SESSIONS", "ACTIVITY"):
            base = f"http://127.0.0.1:{ports[kind]}"
            assert f"{kind.capitalize() + ':':<12} {base}  (docs: {base}/docs)\n" in text
            assert httpx.get(base + "/docs", timeout=5).status_code == 200
        assert "Demo:        http://127.0.0.1:8080" in text
        # Printed once everything was ready: so the whole stack is, seen from the gateway.
        assert httpx.get(gw + "/readyz", params={"deep": "1"}, timeout=10).status_code == 200
        assert text.index("Waiting:") < text.index("Socket:")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        reader.join(10)
