"""`goldwire admin ...`: the gateway's admin API (`/v1/admin`) from a terminal.

Each subcommand is one HTTP call; the answer is printed as JSON. Exit codes: 0 a
2xx answer, 1 any other answer (one line on stderr with the status and the
gateway's message), 2 no answer at all.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

if TYPE_CHECKING:
    import httpx

EXIT_OK, EXIT_REFUSED, EXIT_NO_ANSWER = 0, 1, 2


def api_key(given: str | None, environ: Mapping[str, str]) -> str:
    """--api-key, else the first of API_KEYS (comma-separated, as the gateway reads it)."""
    if given:
        return given
    keys = [k.strip() for k in (environ.get("API_KEYS") or "").split(",") if k.strip()]
    return keys[0] if keys else ""


def request_for(action: str, args: Any) -> tuple[str, str, dict[str, Any] | None,
                                                 dict[str, str] | None]:
    """(method, path, JSON body, query) of one subcommand: pure, so a unit test reads it."""
    tenant = args.tenant
    if action == "connections":
        return "GET", f"/v1/admin/users/{_part(args.user)}/connections", None, {"tenant": tenant}
    if action == "room":
        return "GET", f"/v1/admin/rooms/{_part(args.room)}", None, {"tenant": tenant}
    body: dict[str, Any] = {"tenant": tenant}
    if getattr(args, "reason", None):
        body["reason"] = args.reason
    if action == "disconnect":
        if args.code is not None:
            body["code"] = args.code
        return "POST", f"/v1/admin/users/{_part(args.user)}/disconnect", body, None
    if action == "kick":
        body["user"] = args.user
        return "POST", f"/v1/admin/rooms/{_part(args.room)}/kick", body, None
    if action == "close":
        return "POST", f"/v1/admin/rooms/{_part(args.room)}/close", body, None
    raise ValueError(f"unknown admin action {action!r}")


def _part(name: str) -> str:
    return quote(name, safe="")  # `/` as %2F: the gateway takes both


def _message(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        return resp.text[:200] or resp.reason_phrase
    if isinstance(detail, dict):
        return str(detail.get("message") or detail)
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        return f"{'.'.join(str(p) for p in first.get('loc', []))}: {first.get('msg')}"
    return str(detail)


def run(action: str, args: Any, environ: Mapping[str, str], out: TextIO) -> int:
    import httpx  # here, not at import: every `goldwire` command builds this parser

    from goldwire.cli.status import status_url

    base = status_url(args.url, environ)
    method, path, body, query = request_for(action, args)
    headers = {"Authorization": f"Bearer {api_key(args.api_key, environ)}"}
    try:
        resp = httpx.request(method, base + path, json=body, params=query, headers=headers,
                             timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"goldwire admin {action}: {base} does not answer: "
              f"{exc or type(exc).__name__}", file=sys.stderr)
        return EXIT_NO_ANSWER
    if not resp.is_success:
        print(f"goldwire admin {action}: {resp.status_code} {_message(resp)}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(resp.json(), indent=2), file=out)
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """`goldwire admin ACTION ...` under the top-level subparsers."""
    from goldwire.protocol.names import DEFAULT_TENANT

    admin = sub.add_parser("admin", help="the gateway's admin API: list, disconnect, kick, "
                                         "close, count")
    actions = admin.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_: str, *positional: str) -> Any:
        parser = actions.add_parser(name, help=help_)
        for arg in positional:
            parser.add_argument(arg.lower(), metavar=arg)
        parser.add_argument("--url", help="the gateway's HTTP base URL (default: env "
                                          "GATEWAY_URL, else http://127.0.0.1:8000)")
        parser.add_argument("--api-key", help="default: the first of env API_KEYS")
        parser.add_argument("--tenant", default=DEFAULT_TENANT, help="default: %(default)s")
        parser.add_argument("--timeout", type=float, default=5.0, help="seconds")
        parser.set_defaults(handler=lambda args, env, out: run(name, args, env, out))
        return parser

    action("connections", "a user's live connections on every gateway", "USER")
    disconnect = action("disconnect", "close every connection of a user", "USER")
    disconnect.add_argument("--code", type=int, help="close code 4000-4999 (default 4011)")
    disconnect.add_argument("--reason", help="close reason (at most 120 characters)")
    kick = action("kick", "take a user out of a room", "ROOM", "USER")
    kick.add_argument("--reason", help="sent with the room_update")
    close = action("close", "close a room: every member leaves it", "ROOM")
    close.add_argument("--reason", help="sent with the room_update")
    action("room", "a room's live connections and distinct users", "ROOM")
