"""Where each process of `goldwire up` answers, and whether it is ready yet.

Why `up` waits: a developer who copies the socket URL the moment it is printed
should find a gateway that accepts it and services that record what it does,
so the URLs are printed once every process answers its `/readyz` with 200.
Standard library only, like `probe`: `up` must not need the services' imports.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping

# A wildcard bind address is where a process listens, not an address to open.
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]", "[::]": "[::1]"}
_SERVICE_PORTS = {"presence": "8001", "sessions": "8002", "activity": "8003"}


def reachable(host: str) -> str:
    return _WILDCARDS.get(host, host)


def base_urls(env: Mapping[str, str]) -> dict[str, str]:
    """The HTTP base URL of every process kind `up` knows, from the settings it passes on
    (GATEWAY_HOST/PORT; <KIND>_URL, which `up` derives from <KIND>_HOST/PORT when unset)."""
    host = reachable(env.get("GATEWAY_HOST") or "127.0.0.1")
    urls = {"gateway": f"http://{host}:{env.get('GATEWAY_PORT') or '8000'}"}
    for kind, port in _SERVICE_PORTS.items():
        given = env.get(f"{kind.upper()}_URL")
        urls[kind] = (given or f"http://127.0.0.1:{port}").rstrip("/")
    return urls


def answers_ready(base: str, timeout: float = 0.5) -> bool:
    """`base`/readyz answers 200 within `timeout` seconds."""
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Readiness:
    """The processes not ready yet; `poll()` asks each of them once."""

    def __init__(self, bases: Mapping[str, str], names: Iterable[str],
                 check: Callable[[str], bool] = answers_ready) -> None:
        self.waiting = {name: bases[name] for name in names if name in bases}
        self._check = check

    def poll(self) -> bool:
        """True once every process has answered ready (then no more requests)."""
        for name, base in list(self.waiting.items()):
            if self._check(base):
                del self.waiting[name]
        return not self.waiting
