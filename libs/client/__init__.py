"""Goldwire's Python client side: publishers for backend services, a WebSocket client.

- `HttpPublisher` / `RedisPublisher`: one `Publisher` interface, two backends
  (the gateway's HTTP API, or Redis directly, as a gateway would write it).
- `GoldwireClient`: an asyncio WebSocket client that tracks room offsets and
  recovers what it missed across `reconnect()`.

Exceptions: see `goldwire.client.errors` for the tree.
"""

from goldwire.client.backoff import ExponentialBackoff
from goldwire.client.client import GoldwireClient, ServerMessage
from goldwire.client.errors import (
    ClientError,
    CommandFailed,
    CommandTimeout,
    Disconnected,
    PublishError,
    PublishRejected,
    PublishUnavailable,
)
from goldwire.client.publisher import Publisher, open_publisher
from goldwire.client.publisher_http import HttpPublisher
from goldwire.client.publisher_redis import RedisPublisher

__all__ = [
    "ClientError", "CommandFailed", "CommandTimeout", "Disconnected", "ExponentialBackoff",
    "GoldwireClient", "HttpPublisher", "PublishError", "PublishRejected",
    "PublishUnavailable", "Publisher", "RedisPublisher", "ServerMessage", "open_publisher",
]
