"""Schemathesis against every service's own OpenAPI, served by the real running processes.

One private Redis, one gateway, presence, sessions and activity process for the module
(the gateway's `/v2/sync` routes call the other three, so a 503 there would be a real
outage, not noise). Each operation gets `GOLDWIRE_FUZZ_EXAMPLES` generated cases
(default 12, derandomized so CI sees the same cases every run; raise it locally to dig):

- `not_a_server_error`: no 5xx, whatever the input;
- `response_schema_conformance` / `content_type_conformance`: a documented answer looks
  the way the schema says.

Auth: `/v2/sync/*` takes the user's JWT, every other API route the API key; both travel
as `Authorization: Bearer`. Undocumented status codes (401, 400 from the sync routes'
own errors) are not checked: FastAPI documents only 200 and 422 unless told.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from tests.support import API_KEY, Activity, Gateway, Presence, Service, Sessions, token

EXAMPLES = int(os.environ.get("GOLDWIRE_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
JWT = token("fuzz-user", rooms=("*",), publish=("*",))


@pytest.fixture(scope="module")
def services(redis_server: Any) -> Iterator[dict[str, Service]]:
    prefix = "gwfuzz:" + os.urandom(4).hex()
    started: list[Service] = []
    try:
        presence = Presence(redis_server.url, prefix).start()
        started.append(presence)
        sessions = Sessions(redis_server.url, prefix).start()
        started.append(sessions)
        activity = Activity(redis_server.url, prefix).start()
        started.append(activity)
        gateway = Gateway(redis_server.url, prefix, presence_url=presence.http,
                          sessions_url=sessions.http, activity_url=activity.http).start()
        started.append(gateway)
        yield {"gateway": gateway, "presence": presence, "sessions": sessions,
               "activity": activity}
    finally:
        for service in reversed(started):
            service.terminate()


def auth_for(path: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {JWT if path.startswith('/v2/sync') else API_KEY}"}


def fuzz(schema: Any) -> None:
    """Every operation of `schema`, positive and negative cases; all failures reported."""
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    for operation in operations:
        strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                             operation.as_strategy(GenerationMode.NEGATIVE))

        @FUZZ
        @given(case=strategy)
        def check(case: Any) -> None:
            case.call_and_validate(headers=auth_for(case.path), checks=CHECKS, timeout=10)

        try:
            check()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


def test_every_service_serves_openapi(services: dict[str, Service]) -> None:
    for name, service in services.items():
        doc = httpx.get(service.http + "/openapi.json", timeout=5).json()
        assert doc["paths"], name


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["gateway", "presence", "sessions", "activity"])
def test_api_conforms(services: dict[str, Service], name: str) -> None:
    fuzz(schemathesis.openapi.from_url(services[name].http + "/openapi.json"))


def test_ack_upto_the_last_stream_id(services: dict[str, Service]) -> None:
    """Found by hand after the fuzzers: `upto` at 2**64-1 on both halves was stored, then
    every read of the user's notifications was a 500 (Redis cannot step past it)."""
    base, last = services["sessions"].http, f"{2**64 - 1}-{2**64 - 1}"
    headers = auth_for("/v1")
    resp = httpx.post(base + "/v1/users/u-last/notifications/ack", json={"upto": last},
                      headers=headers, timeout=5)
    assert resp.status_code == 422, resp.text
    resp = httpx.get(base + "/v1/users/u-last/notifications", headers=headers, timeout=5)
    assert resp.status_code == 200, resp.text
