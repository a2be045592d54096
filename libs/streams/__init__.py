"""Redis Streams plumbing shared by the services (no business logic)."""

from goldwire.streams.consumer import ConsumerStats, DeadLetterError, StreamConsumer

__all__ = ["ConsumerStats", "DeadLetterError", "StreamConsumer"]
