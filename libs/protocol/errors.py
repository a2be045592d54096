"""Exceptions of the wire protocol.

The tree, rooted in one base error::

    GoldwireError
    └── ProtocolError            a frame or value that breaks the wire contract
        ├── BadFrame             not JSON, not an object, unknown op, wrong fields
        └── FrameTooLarge        over the configured frame size

Each ProtocolError carries the `ErrorCode` the client will see and the `ref`
of the command it belongs to (when the frame got far enough to have one).
"""

from __future__ import annotations

from goldwire.protocol.codes import ErrorCode


class GoldwireError(Exception):
    """Base of every error Goldwire raises on purpose."""


class ProtocolError(GoldwireError):
    """A frame or value that breaks the wire contract."""

    code: ErrorCode = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, *, ref: str | int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ref = ref


class BadFrame(ProtocolError):
    """Not JSON, not an object, an unknown op or fields of the wrong shape."""


class FrameTooLarge(ProtocolError):
    """A frame over the configured size limit."""

    code = ErrorCode.TOO_LARGE
