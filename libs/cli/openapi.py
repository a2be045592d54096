"""Every process's OpenAPI document, as served at its `/openapi.json` (and drawn at
`/docs`), written to docs/openapi/ so a reader of the repository has them without
running anything:

    python -m goldwire.cli.openapi docs/openapi

A unit test regenerates them and fails when the checked-in copies are stale. The apps
are built with default settings and never started (no Redis is needed): the routes,
models and descriptions are the same whatever the settings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def apps() -> dict[str, Callable[[], Any]]:
    from goldwire.activity.api import create_app as activity_app
    from goldwire.activity.settings import ActivitySettings
    from goldwire.gateway.app import create_app as gateway_app
    from goldwire.gateway.settings import GatewaySettings
    from goldwire.presence.api import create_app as presence_app
    from goldwire.presence.settings import PresenceSettings
    from goldwire.sessions.api import create_app as sessions_app
    from goldwire.sessions.settings import SessionsSettings

    return {
        "gateway": lambda: gateway_app(GatewaySettings()),
        "presence": lambda: presence_app(PresenceSettings()),
        "sessions": lambda: sessions_app(SessionsSettings()),
        "activity": lambda: activity_app(ActivitySettings()),
    }


def documents() -> dict[str, str]:
    """File name -> the document's text (sorted keys, 2-space indent, final newline)."""
    return {f"{name}.json": json.dumps(make().openapi(), indent=2, sort_keys=True) + "\n"
            for name, make in apps().items()}


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in documents().items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/openapi")):
        print(path)
