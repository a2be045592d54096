"""The `goldwire` command line and the local-process helpers it shares with tests.

Modules: `main` (argparse and dispatch), `tokens` (development JWTs),
`up` + `supervisor` + `services` (`goldwire up`), `redis_server` /
`redis_docker` / `redis_pick` (a private Redis for development and tests).
"""

from goldwire.cli.main import main

__all__ = ["main"]
