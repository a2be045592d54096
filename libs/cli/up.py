"""`goldwire up`: the whole stack on one machine for development.

Order matters: Redis first (the one at REDIS_URL if it answers, else a
private one), then every available service kind (see `services`), and on the
way down the reverse, so services never see their Redis vanish during a
normal shutdown. Development secrets are generated only when unset, and
printed, so a developer can connect with no setup at all; the URLs are printed
once every process answers ready (see `readiness`), so each one works when read.
"""

from __future__ import annotations

import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

from goldwire.cli.readiness import Readiness, base_urls, reachable
from goldwire.cli.redis_server import RedisServer, RedisServerError, redis_answers
from goldwire.cli.services import ServiceKind, available_kinds
from goldwire.cli.supervisor import DEFAULT_GRACE, Supervisor
from goldwire.cli.tokens import mint_token

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_GATEWAY_HOST = "127.0.0.1"
DEFAULT_GATEWAY_PORT = "8000"
# The example token outlives a working day so a long `goldwire up` session
# does not leave the developer with an expired token.
EXAMPLE_TOKEN_TTL = 24 * 3600
READY_WARNING = 60.0  # seconds before `up` names the processes that are still not ready


def env_value(environ: Mapping[str, str], name: str, default: str = "") -> str:
    """The value of `name`, with empty strings treated as unset."""
    return environ.get(name) or default


def dev_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """Random JWT_SECRET and API_KEYS for whichever of them is unset or empty."""
    generated: dict[str, str] = {}
    if not env_value(environ, "JWT_SECRET"):
        generated["JWT_SECRET"] = secrets.token_urlsafe(32)
    if not env_value(environ, "API_KEYS"):
        generated["API_KEYS"] = "dev-" + secrets.token_hex(16)
    # The gateway reaches the services at <KIND>_URL: follow a changed host or port.
    for kind, port in (("PRESENCE", "8001"), ("SESSIONS", "8002"), ("ACTIVITY", "8003")):
        if not env_value(environ, f"{kind}_URL"):
            host = reachable(env_value(environ, f"{kind}_HOST", "127.0.0.1"))
            generated[f"{kind}_URL"] = f"http://{host}:{env_value(environ, f'{kind}_PORT', port)}"
    return generated


def resolve_redis(
    environ: Mapping[str, str], start_server: Callable[[], RedisServer] | None = None
) -> tuple[str, RedisServer | None]:
    """Return (url, private server or None): REDIS_URL if it answers within 1 s."""
    url = env_value(environ, "REDIS_URL", DEFAULT_REDIS_URL)
    if redis_answers(url, timeout=1.0):
        return url, None
    factory = start_server or (lambda: RedisServer(die_with_parent=True).start())
    server = factory()
    return server.url, server


def gateway_url(environ: Mapping[str, str]) -> str:
    host = reachable(env_value(environ, "GATEWAY_HOST", DEFAULT_GATEWAY_HOST))
    port = env_value(environ, "GATEWAY_PORT", DEFAULT_GATEWAY_PORT)
    return f"ws://{host}:{port}/ws"


class _Signals:
    """Counts SIGINT/SIGTERM: the first asks for a clean stop, a second hurries it."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1

    @contextmanager
    def installed(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_up(
    environ: Mapping[str, str],
    out: TextIO | None = None,
    kinds: list[ServiceKind] | None = None,
    grace: float = DEFAULT_GRACE,
    poll: float = 0.2,
    ready_warning: float = READY_WARNING,
) -> int:
    """Run the stack until Ctrl-C/SIGTERM (exit 0) or a child dies (exit 1).

    Must run in the main thread (it installs signal handlers).
    """
    out = out if out is not None else sys.stdout
    signals = _Signals()
    supervisor = Supervisor(out=out)
    redis_server: RedisServer | None = None

    def say(message: str) -> None:
        print(message, file=out, flush=True)

    with signals.installed():
        try:
            try:
                redis_url, redis_server = resolve_redis(environ)
            except RedisServerError as exc:
                say(f"goldwire up: no Redis at REDIS_URL and could not start one: {exc}")
                return 1
            if redis_server is None:
                say(f"Redis:       {redis_url} (existing)")
            else:
                say(f"Redis:       {redis_url} (private, pid {redis_server.pid}, stops on exit)")

            generated = dev_defaults(environ)
            env = {**environ, **generated, "REDIS_URL": redis_url}
            env.setdefault("PYTHONUNBUFFERED", "1")

            kinds = available_kinds() if kinds is None else kinds
            if not kinds:
                say("goldwire up: no service packages are installed; nothing to run")
                return 1
            for kind in kinds:
                child = supervisor.start(kind.name, kind.argv(), env)
                say(f"Started:     {kind.name} (pid {child.pid})")

            _print_credentials(say, env, generated)
            names = [kind.name for kind in kinds]
            ready = Readiness(base_urls(env), names)
            if not ready.waiting:  # no kind `up` knows the address of: nothing to wait for
                say("Press Ctrl-C to stop.")
                return _wait(supervisor, redis_server, signals, say, poll)
            say(f"Waiting:     {', '.join(ready.waiting)} (until each /readyz is 200)")
            announce = _Announcer(say, env, names, ready, ready_warning)
            return _wait(supervisor, redis_server, signals, say, poll, announce)
        finally:
            supervisor.shutdown(grace=grace, hurry=lambda: signals.count > 1)
            if redis_server is not None:
                redis_server.stop()


def _print_credentials(
    say: Callable[[str], None], env: Mapping[str, str], generated: dict[str, str]
) -> None:
    token = mint_token(
        env["JWT_SECRET"],
        "dev",
        name="Developer",
        rooms=["*"],
        publish=["*"],
        ttl=EXAMPLE_TOKEN_TTL,
        audience=env_value(env, "JWT_AUDIENCE") or None,
        issuer=env_value(env, "JWT_ISSUER") or None,
    )
    api_key = env["API_KEYS"].split(",")[0].strip()
    if "JWT_SECRET" in generated:
        say(f"JWT_SECRET:  {generated['JWT_SECRET']} (generated for this run)")
    say(
        f"API key:     {api_key}" + (" (generated for this run)" if "API_KEYS" in generated else "")
    )
    say(f"Dev token:   {token}")


class _Announcer:
    """Prints every URL once every process is ready (and a warning, once, naming the
    ones that are not after `warn_after` seconds: their own output says why)."""

    def __init__(self, say: Callable[[str], None], env: Mapping[str, str], names: list[str],
                 ready: Readiness, warn_after: float) -> None:
        self._say, self._env, self._names, self._ready = say, env, names, ready
        self._started = time.monotonic()
        self._warn_at: float | None = self._started + warn_after
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        if not self._ready.poll():
            if self._warn_at is not None and time.monotonic() >= self._warn_at:
                self._warn_at = None
                self._say(f"goldwire up: not ready yet: {', '.join(self._ready.waiting)} "
                          "(`goldwire status` says which check fails)")
            return
        self.done = True
        took = time.monotonic() - self._started
        for line in url_lines(self._env, self._names):
            self._say(line)
        self._say(f"Ready in {took:.1f} s. Press Ctrl-C to stop.")


def url_lines(env: Mapping[str, str], names: list[str]) -> list[str]:
    """The socket URL, the gateway's HTTP and docs, each service's base URL and docs,
    and the demo app's URL when `make demo` started `up` (GOLDWIRE_DEMO_URL)."""
    bases = base_urls(env)
    lines = []
    if "gateway" in names:
        lines.append(f"Socket:      {gateway_url(env)}")
    for name in names:
        if name in bases:
            lines.append(f"{name.capitalize() + ':':<12} {bases[name]}  (docs: {bases[name]}/docs)")
    demo = env_value(env, "GOLDWIRE_DEMO_URL")
    if demo:
        lines.append(f"Demo:        {demo}  (the documents example, starting now)")
    return lines


def _wait(
    supervisor: Supervisor,
    redis_server: RedisServer | None,
    signals: _Signals,
    say: Callable[[str], None],
    poll: float,
    announce: Callable[[], None] = lambda: None,
) -> int:
    while not signals.count:
        dead = supervisor.first_exited()
        if dead is not None:
            say(
                f"goldwire up: {dead.name} (pid {dead.pid}) exited unexpectedly "
                f"with code {dead.proc.returncode}; stopping the rest"
            )
            return 1
        if redis_server is not None and not redis_server.running:
            say("goldwire up: the private Redis exited unexpectedly; stopping the rest")
            return 1
        announce()
        time.sleep(poll)
    say("goldwire up: shutting down")
    return 0
