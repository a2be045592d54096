"""`HttpPublisher`: publish through the gateway's `POST /v1/publish` and `/v1/publish/batch`.

Why retries are safe here: every request carries an idempotency key (the
caller's, or a fresh one from `publisher.prepare`), and a retry sends the
very same body. The gateway answers a repeated key inside its window with
the first result (`duplicate: true`) and does not deliver again, so "the
response was lost, try again" delivers once.

Retried: transport errors (connect, read, write, timeouts, a dropped
connection) and 5xx. Raised at once: 4xx, as `PublishRejected` carrying the
gateway's `detail`.

Limit: retries end after `retries` more attempts (about 0.1 + 0.2 + 0.4 s with
the default backoff); a longer outage raises `PublishUnavailable`, and the
caller may retry later with the same key inside the gateway's idempotency
window (300 s by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from goldwire.client.backoff import ExponentialBackoff, with_retries
from goldwire.client.errors import PublishRejected, PublishUnavailable
from goldwire.client.publisher import BatchItem, Publisher, prepare
from goldwire.protocol.http import BatchResult, PublishRequest, PublishResult


def request_body(req: PublishRequest) -> dict[str, Any]:
    """The JSON body of one publish: wire names (`from`), unset targets left out."""
    return req.model_dump(mode="json", by_alias=True, exclude_none=True)


class HttpPublisher(Publisher):
    """Publishes through a gateway's HTTP API with an API key.

    `retries` is how many times a failed attempt is repeated (so `retries=3`
    makes at most four); `timeout` applies to each attempt.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 5,
        retries: int = 3,
        backoff: ExponentialBackoff | None = None,
    ) -> None:
        self.retries = retries
        self.backoff = backoff or ExponentialBackoff()
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {api_key}"},
        )

    async def publish(self, request: PublishRequest) -> PublishResult:
        body = request_body(prepare(request))
        data = await with_retries(lambda: self._post("/v1/publish", body),
                                  self.retries, self.backoff)
        return PublishResult.model_validate(data)

    async def publish_batch(self, items: Sequence[BatchItem]) -> list[PublishResult]:
        """One request for all items; a retry resends every item with its own key.

        The gateway runs the items one by one, so a batch that failed half way
        is completed by the retry: the items already applied come back as
        duplicates with their first results.
        """
        body = {"items": [request_body(prepare(item)) for item in items]}
        data = await with_retries(lambda: self._post("/v1/publish/batch", body),
                                  self.retries, self.backoff)
        return BatchResult.model_validate(data).results

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        """One attempt: the decoded 2xx body, PublishRejected on 4xx, PublishUnavailable else."""
        try:
            resp = await self._http.post(path, json=body)
        except httpx.TransportError as exc:
            raise PublishUnavailable(f"POST {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500:
            raise PublishUnavailable(f"POST {path}: {resp.status_code} {_detail(resp)}")
        if resp.status_code >= 400:
            raise PublishRejected(resp.status_code, _detail(resp))
        try:
            return resp.json()
        except ValueError as exc:  # a proxy's HTML page, a truncated body
            raise PublishUnavailable(f"POST {path}: response is not JSON") from exc


def _detail(resp: httpx.Response) -> Any:
    """FastAPI's `detail` when the body has one, else the start of the body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    return body.get("detail", body) if isinstance(body, dict) else body
