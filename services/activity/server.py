"""`goldwire activity`: one activity process (consumer, arq jobs, HTTP API) from the environment."""

from __future__ import annotations

from goldwire.activity.api import create_app
from goldwire.activity.settings import ActivitySettings
from goldwire.service import run_service


def run() -> None:
    settings = ActivitySettings()
    run_service(create_app, settings, settings.activity_host, settings.activity_port)
