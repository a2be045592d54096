"""`goldwire presence`: one presence process (consumer, arq jobs, HTTP API) from the environment."""

from __future__ import annotations

import sys

from goldwire.presence.api import create_app
from goldwire.presence.settings import PresenceSettings
from goldwire.service import run_service


def run() -> None:
    settings = PresenceSettings()
    error = settings.config_error()
    if error:  # one line, before anything starts: the operator sees why at once
        print(f"goldwire presence: {error}", file=sys.stderr)
        raise SystemExit(2)
    run_service(create_app, settings, settings.presence_host, settings.presence_port,
                service="presence")
