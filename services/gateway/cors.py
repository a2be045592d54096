"""CORS for the gateway's browser-facing HTTP routes (`/v2/sync/*`, `/v1/*`, `/sdk/*`).

One allowlist for sockets and HTTP: `ALLOWED_ORIGINS`, which the WebSocket handshake
already checks (transport.py). With origins listed, those origins may call with
credentials (the browser sends cookies; the response names the origin and varies on it).
With none listed, any origin may call without credentials: a wildcard is never combined
with credentials, which browsers refuse anyway. Preflights are answered here, before the
routes, so they are not recorded as API use.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from goldwire.gateway.settings import GatewaySettings

METHODS = ["GET", "POST", "PUT", "DELETE"]
HEADERS = ["Authorization", "Content-Type", "Idempotency-Key"]
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight answer


def add_cors(app: FastAPI, settings: GatewaySettings) -> None:
    origins = settings.origin_list()
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins or ["*"],
        allow_credentials=bool(origins),
        allow_methods=METHODS,
        allow_headers=HEADERS,
        max_age=PREFLIGHT_MAX_AGE,
    )
