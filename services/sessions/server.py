"""`goldwire sessions`: one sessions process (consumer, arq job, HTTP API) from the environment."""

from __future__ import annotations

from goldwire.service import run_service
from goldwire.sessions.api import create_app
from goldwire.sessions.settings import SessionsSettings


def run() -> None:
    settings = SessionsSettings()
    run_service(create_app, settings, settings.sessions_host, settings.sessions_port,
                service="sessions")
