"""`goldwire status`: the gateway's deep readiness (`/readyz?deep=1`) as a short table.

Why through the gateway: it already knows every service's URL and reads the
event stream, so one address is all an operator needs. Exit codes: 0 every
part ready, 1 something is not, 2 the gateway gave no readiness answer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import httpx

EXIT_READY, EXIT_NOT_READY, EXIT_NO_ANSWER = 0, 1, 2


class NoAnswer(Exception):
    """The gateway did not answer, or not with a deep readiness document."""


def status_url(given: str | None, environ: Mapping[str, str]) -> str:
    """--url, else GATEWAY_URL, else the gateway `goldwire up` runs (GATEWAY_HOST/PORT)."""
    if given or environ.get("GATEWAY_URL"):
        return (given or environ["GATEWAY_URL"]).rstrip("/")
    host = environ.get("GATEWAY_HOST") or "127.0.0.1"
    return f"http://{host}:{environ.get('GATEWAY_PORT') or '8000'}"


def fetch(base_url: str, timeout: float) -> dict[str, Any]:
    """The deep readiness answer (a 503 carries one too), or raise NoAnswer."""
    try:
        resp = httpx.get(base_url + "/readyz", params={"deep": "1"}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise NoAnswer(f"{base_url} does not answer: {exc or type(exc).__name__}") from None
    try:
        answer = resp.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("services"), dict):
        raise NoAnswer(f"{base_url}/readyz?deep=1 answered {resp.status_code} "
                       "without a deep readiness document (not a Goldwire gateway?)")
    return answer


def _detail(part: Mapping[str, Any]) -> str:
    if part.get("error"):
        return str(part["error"])
    checks = part.get("checks") or {}
    failed = [name for name, ok in checks.items() if ok is not True]
    return "failed: " + ", ".join(failed) if failed else "ok"


def _lag(group: Mapping[str, Any] | None) -> str:
    if group is None:
        return "-"
    lag = "?" if group.get("lag") is None else str(group["lag"])
    return f"{lag} ({group.get('pending', 0)} pending)"


def rows(answer: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(name, ready, lag, detail): the gateway, each service, then any other group."""
    gateway = answer.get("gateway") or {}
    groups: dict[str, Any] = dict((answer.get("stream") or {}).get("groups") or {})
    table = [("gateway", _yes(gateway.get("ready")), "-", _detail(gateway))]
    for name, part in (answer.get("services") or {}).items():
        table.append((name, _yes(part.get("ready")), _lag(groups.pop(name, None)),
                      _detail(part)))
    for name, group in groups.items():  # a group no service here owns: still worth a look
        table.append((f"group {name}", "-", _lag(group), "consumers: "
                      f"{group.get('consumers', 0)}"))
    stream_error = (answer.get("stream") or {}).get("error")
    if stream_error:
        table.append(("stream", "-", "-", str(stream_error)))
    return table


def _yes(ready: Any) -> str:
    return "yes" if ready is True else "NO"


def format_table(answer: Mapping[str, Any]) -> str:
    """The answer as aligned columns: SERVICE, READY, LAG, DETAIL, then a summary line."""
    header = ("SERVICE", "READY", "LAG", "DETAIL")
    body = rows(answer)
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(3)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[3]])
             .rstrip() for row in (header, *body)]
    down = [row[0] for row in body if row[1] == "NO"]
    lines.append("all ready" if answer.get("ready") is True and not down
                 else "not ready: " + ", ".join(down or ["see above"]))
    return "\n".join(lines)


def status(base_url: str, timeout: float, out: TextIO, as_json: bool = False) -> int:
    try:
        answer = fetch(base_url, timeout)
    except NoAnswer as exc:
        print(f"goldwire status: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    print(json.dumps(answer, indent=2) if as_json else format_table(answer), file=out)
    return EXIT_READY if answer.get("ready") is True else EXIT_NOT_READY
