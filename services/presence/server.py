"""`goldwire presence`: one presence process (consumer, arq jobs, HTTP API) from the environment."""

from __future__ import annotations

from goldwire.presence.api import create_app
from goldwire.presence.settings import PresenceSettings
from goldwire.service import run_service


def run() -> None:
    settings = PresenceSettings()
    run_service(create_app, settings, settings.presence_host, settings.presence_port)
