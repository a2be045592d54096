"""Redis Streams plumbing shared by the services (no business logic)."""

from goldwire.streams.consumer import ConsumerStats, StreamConsumer

__all__ = ["ConsumerStats", "StreamConsumer"]
