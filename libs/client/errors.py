"""Exceptions of the Python client and publishers.

The tree, rooted in the protocol's one base error::

    GoldwireError                    (goldwire.protocol.errors)
    └── ClientError                  anything goldwire.client raises on purpose
        ├── PublishError             a backend publish that did not go through
        │   ├── PublishRejected      refused (HTTP 4xx, or invalid before sending): fix it,
        │   │                        retrying the same request cannot help
        │   └── PublishUnavailable   network errors, 5xx or Redis down after every retry:
        │                            retry later with the same idempotency key
        ├── CommandFailed            the gateway answered a socket command with an `error`
        ├── CommandTimeout           no reply to a socket command in time (also a TimeoutError)
        └── Disconnected             the socket closed, or could not be opened

Why the split between Rejected and Unavailable: a caller's only real decision
after a failed publish is "retry or not", and the class answers it.
`Disconnected.info` looks the close code up in the protocol's close table, so
a caller can read whether and how to reconnect instead of guessing.
"""

from __future__ import annotations

from goldwire.protocol.codes import CLOSE_TABLE, CloseCode, CloseInfo
from goldwire.protocol.errors import GoldwireError


class ClientError(GoldwireError):
    """Base of every error goldwire.client raises on purpose."""


class PublishError(ClientError):
    """A backend publish that did not go through."""


class PublishRejected(PublishError):
    """The request is wrong (HTTP 4xx, or invalid before it was sent); do not retry it as is.

    `status` is the HTTP status (422 for a request refused locally by the same
    model the gateway validates with); `detail` is the gateway's explanation.
    """

    def __init__(self, status: int, detail: object) -> None:
        super().__init__(f"publish rejected ({status}): {detail}")
        self.status = status
        self.detail = detail


class PublishUnavailable(PublishError):
    """Every attempt failed on the network, a 5xx or Redis; safe to retry with the same key."""

    def __init__(self, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class CommandFailed(ClientError):
    """The gateway answered a command with an `error` frame.

    `code` is the protocol's error code (`forbidden`, `not_found`, ...),
    `message` the gateway's human text, `ref` the failed command's ref.
    """

    def __init__(self, code: str, message: str, ref: int | str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref


class CommandTimeout(ClientError, TimeoutError):
    """No reply to a command within the client's reply timeout."""


class Disconnected(ClientError):
    """The socket closed (or never opened); `code` is the close code, None if it never opened."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"disconnected ({code}): {reason}" if reason else f"disconnected ({code})")
        self.code = code
        self.reason = reason

    @property
    def info(self) -> CloseInfo | None:
        """What the protocol says this close code means and whether to reconnect."""
        if self.code is None:
            return None
        try:
            return CLOSE_TABLE.get(CloseCode(self.code))
        except ValueError:
            return None
