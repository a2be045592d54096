"""The `goldwire` command line: argument parsing and dispatch only.

Each subcommand is a function `(args, environ, out) -> exit code` so tests can
pass their own environment and capture output without touching os.environ.
Service subcommands import their service lazily: `goldwire token` must work
even when a service package is broken or not written yet.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from goldwire.cli.admin import add_parser as add_admin_parser
from goldwire.cli.tokens import DEFAULT_TTL, mint_token

Handler = Callable[[argparse.Namespace, Mapping[str, str], TextIO], int]


def _service_command(kind: str) -> Handler:
    """`goldwire <kind>`: run one process of that service, configured from the environment."""

    def command(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO) -> int:
        module = f"goldwire.{kind}.server"
        try:
            run = importlib.import_module(module).run
        except ModuleNotFoundError as exc:
            if exc.name not in (f"goldwire.{kind}", module):
                raise
            print(f"goldwire {kind}: {exc.name} is not available", file=sys.stderr)
            return 1
        run()  # reads its settings from the process environment
        return 0

    return command


def _cmd_token(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO) -> int:
    secret = args.secret or environ.get("JWT_SECRET") or ""
    if not secret:
        print("goldwire token: pass --secret or set JWT_SECRET", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("goldwire token: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    token = mint_token(
        secret,
        args.user,
        name=args.name,
        tenant=args.tenant,
        rooms=args.rooms,
        publish=args.publish,
        send=args.send,
        ttl=args.ttl,
        audience=environ.get("JWT_AUDIENCE") or None,
        issuer=environ.get("JWT_ISSUER") or None,
    )
    print(token, file=out)
    return 0


def _cmd_up(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO) -> int:
    from goldwire.cli.up import run_up

    return run_up(environ, out=out)


def _cmd_probe(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO) -> int:
    from goldwire.cli.probe import probe, probe_url

    return probe(probe_url(args.url, environ), args.timeout, out)


def _cmd_status(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO) -> int:
    from goldwire.cli.status import status, status_url

    return status(status_url(args.url, environ), args.timeout, out, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each subparser stores its handler as `handler`."""
    parser = argparse.ArgumentParser(
        prog="goldwire", description="Goldwire real-time server: run services, mint dev tokens."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for kind, what in (("gateway", "gateway"), ("presence", "presence service"),
                       ("sessions", "sessions service"), ("activity", "activity service")):
        service = sub.add_parser(kind, help=f"run one {what} process, configured from env")
        service.set_defaults(handler=_service_command(kind))

    token = sub.add_parser("token", help="mint an HS256 development JWT and print it")
    token.add_argument("--user", required=True, help="user id (the `sub` claim)")
    token.add_argument("--name", help="display name")
    token.add_argument("--tenant", help="tenant id (omitted when not given)")
    token.add_argument("--rooms", default="", help="comma-separated room patterns to join")
    token.add_argument("--publish", default="", help="comma-separated room patterns to publish")
    token.add_argument("--send", default=None,
                       help="comma-separated user-id patterns `send` may target "
                            "(omitted: anyone in the tenant; '': no one)")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="lifetime in seconds")
    token.add_argument("--secret", help="HS256 secret (default: env JWT_SECRET)")
    token.set_defaults(handler=_cmd_token)

    up = sub.add_parser("up", help="run Redis (if needed) and every service locally until Ctrl-C")
    up.set_defaults(handler=_cmd_up)

    check = sub.add_parser("probe", help="GET a health URL, exit 0 on 2xx (container health check)")
    check.add_argument("url", nargs="?",
                       help="default: env GOLDWIRE_PROBE_URL, else the gateway's /healthz")
    check.add_argument("--timeout", type=float, default=3.0, help="seconds")
    check.set_defaults(handler=_cmd_probe)

    stat = sub.add_parser("status", help="every service's readiness and the event stream lag, "
                                         "from the gateway's /readyz?deep=1")
    stat.add_argument("--url", help="the gateway's HTTP base URL (default: env GATEWAY_URL, "
                                    "else http://GATEWAY_HOST:GATEWAY_PORT, 127.0.0.1:8000)")
    stat.add_argument("--timeout", type=float, default=5.0, help="seconds")
    stat.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    stat.set_defaults(handler=_cmd_status)

    add_admin_parser(sub)
    return parser


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    """Entry point of the `goldwire` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    env = dict(os.environ) if environ is None else environ
    return handler(args, env, out if out is not None else sys.stdout)
