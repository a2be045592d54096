"""What the presence, sessions and activity services share as processes: background
tasks started once and watched (`running` feeds /healthz), a stop that cancels them
and then closes the service's clients, and the FastAPI app whose lifespan does both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request

from goldwire.service.http import api_key_checker
from goldwire.service.request_id import RequestIdMiddleware


class BackgroundService:
    """A service's loops (stream consumer, arq worker, ...) as tasks in `self._tasks`.

    Subclasses fill `_tasks` in `start` and close their Redis/HTTP clients in `close`.
    """

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Close the clients the service opened (after every task has stopped)."""

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.close()

    def running(self) -> bool:
        """Every loop still runs: a process whose consumer died answers /healthz 503."""
        return bool(self._tasks) and not any(t.done() for t in self._tasks)


S = TypeVar("S", bound=BackgroundService)


def service_app(title: str, make_service: Callable[[], S]) -> FastAPI:
    """The service's FastAPI app: the lifespan starts `make_service()` and hands it to
    request handlers as `request.state.service` (never a global), then stops it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, S]]:
        service = make_service()
        await service.start()
        try:
            yield {"service": service}
        finally:
            await service.stop()

    app = FastAPI(title=title, version="1", lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)  # request_id in every line a request logs
    return app


def _service_keys(request: Request) -> frozenset[str]:
    keys: frozenset[str] = request.state.service.settings.api_key_set()
    return keys


# The API-key dependency of every service route: API_KEYS of the service's own settings.
require_api_key = api_key_checker(_service_keys)
