"""`GoldwireClient`: a small asyncio WebSocket client for tests, scripts and services.

One reader task owns the socket's inbound side. A frame carrying the `ref`
of a command we sent resolves that command (an `error` frame raises
`CommandFailed`); every other frame goes to one queue, read with
`await client.next_message(timeout)` or `async for msg in client`.

The reader, not the consumer, keeps the last offset seen per room, and it
applies a join's reply before the replay that follows it, so the offsets are
right even when the consumer lags behind. `reconnect()` opens a new socket
and rejoins every room with `since` = that offset, in the connect frame
itself; the gateway replays what was missed, in order, before anything live.
Messages already queued stay queued across a reconnect, so nothing is lost.
Room messages at or below the room's last offset are dropped (the protocol
asks clients to deduplicate by offset) and counted in `duplicates_dropped`.

Tokens: pass a string, or a callable (plain or async) that returns a fresh
token. With a callable the client refreshes by itself: before the token's
`expires_at` (from the connect reply) it asks the callable for a new one and
sends the `refresh` op, so a long-lived service connection outlives any
token; `reconnect()` asks it too. A refresh that fails is retried until the
token runs out, and then the gateway closes with 4001 as it would anyway.

Not here on purpose: automatic reconnection. A test or script decides when
to reconnect (`Disconnected.info` says whether the protocol allows it), which
keeps this client predictable.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from goldwire.client.errors import CommandFailed, CommandTimeout, Disconnected
from goldwire.protocol.offsets import parse_offset

log = logging.getLogger("goldwire.client")

RoomSpec: TypeAlias = str | tuple[str, str | None] | Mapping[str, Any]
"""A room to join at connect: `"doc:1"`, `("doc:1", since)` or `{"room": ..., "since": ...}`."""


TokenSource: TypeAlias = str | Callable[[], str | Awaitable[str]]
"""A token, or a callable that returns a fresh one (it may be async)."""

REFRESH_MARGIN = 30.0
"""Refresh this many seconds before expiry (at most half the token's remaining life)."""

REFRESH_RETRY = 1.0
"""After a failed refresh, try again this many seconds later (while the token lasts)."""


@dataclass(frozen=True, slots=True)
class ServerMessage:
    """One server → client frame, parsed once.

    `sender` is the frame's `from`; `raw` is the whole decoded frame, fields
    unknown to this version included (the contract only ever adds fields).
    """

    type: str
    data: dict[str, Any]
    room: str | None
    offset: str | None
    ts: int | None
    sender: dict[str, Any] | None
    raw: dict[str, Any]

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> ServerMessage:
        data = frame.get("data")
        return cls(
            type=str(frame.get("type", "")),
            data=data if isinstance(data, dict) else {},
            room=frame.get("room"),
            offset=frame.get("offset"),
            ts=frame.get("ts"),
            sender=frame.get("from"),
            raw=frame,
        )


@dataclass(frozen=True, slots=True)
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    on_reply: Callable[[dict[str, Any]], None] | None  # runs in the reader, before later frames


@dataclass(frozen=True, slots=True)
class _Closed:
    """Queue marker: the socket of `generation` ended with `error`."""

    generation: int
    error: Disconnected


def room_spec(spec: RoomSpec) -> dict[str, Any]:
    """Normalize a RoomSpec to the connect frame's `{"room", "since"?}`."""
    if isinstance(spec, str):
        room, since = spec, None
    elif isinstance(spec, tuple):
        room, since = spec
    else:
        room, since = spec["room"], spec.get("since")
    return {"room": room, "since": since} if since is not None else {"room": room}


class GoldwireClient:
    """A connection to a gateway's `/ws`; create it with `await GoldwireClient.connect(...)`."""

    def __init__(
        self,
        url: str,
        token: TokenSource,
        *,
        session_id: str | None = None,
        reply_timeout: float = 10.0,
        open_timeout: float = 10.0,
        dedupe: bool = True,
        refresh_margin: float = REFRESH_MARGIN,
    ) -> None:
        self.url = url
        self.token = token if isinstance(token, str) else ""
        self._token_source = None if isinstance(token, str) else token
        self.refresh_margin = refresh_margin
        self.expires_at: float | None = None  # the current token's expiry (unix seconds)
        self.refreshes = 0  # tokens swapped in on the live socket
        self._refresher: asyncio.Task[None] | None = None
        self.session_id = session_id
        self.reply_timeout = reply_timeout
        self.open_timeout = open_timeout
        self.dedupe = dedupe
        self.welcome: dict[str, Any] = {}  # the last connect reply's data
        self.duplicates_dropped = 0
        self._offsets: dict[str, str | None] = {}  # joined room -> last offset seen
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, _Pending] = {}
        self._refs = itertools.count(1)
        self._queue: asyncio.Queue[ServerMessage | _Closed] = asyncio.Queue()
        self._generation = 0
        self._ended: Disconnected | None = None

    # --- opening ------------------------------------------------------------------------
    @classmethod
    async def connect(
        cls,
        url: str,
        token: TokenSource,
        rooms: Iterable[RoomSpec] | None = None,
        session_id: str | None = None,
        **options: Any,
    ) -> GoldwireClient:
        """Open the socket, authenticate and join `rooms`; raises Disconnected if refused.

        Rooms the gateway refuses are reported in `welcome["rooms"]` (with an
        `error`) and are not tracked; the connection stays open.
        """
        client = cls(url, token, session_id=session_id, **options)
        await client._open([room_spec(r) for r in rooms or ()])
        return client

    async def reconnect(self, token: TokenSource | None = None) -> dict[str, Any]:
        """Close this socket (if open), open a new one and rejoin every room from its last offset.

        Returns the connect reply's data; `data["rooms"]` says per room
        whether it was `recovered` (false: history no longer reaches back,
        reload the room's state over HTTP).
        """
        if isinstance(token, str):
            self.token, self._token_source = token, None
        elif token is not None:
            self._token_source = token
        await self._shutdown()
        rooms = [room_spec((room, since)) for room, since in self._offsets.items()]
        return await self._open(rooms)

    async def _open(self, rooms: list[dict[str, Any]]) -> dict[str, Any]:
        if self._token_source is not None:
            self.token = await self._fresh_token()
        try:
            ws = await ws_connect(self.url, open_timeout=self.open_timeout)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise Disconnected(None, f"could not open {self.url}: {exc}") from exc
        self._generation += 1
        self._ws, self._ended = ws, None
        self._reader = asyncio.create_task(self._read(ws, self._generation),
                                           name=f"goldwire-client-{self._generation}")
        since = {r["room"]: r.get("since") for r in rooms}

        def on_welcome(data: dict[str, Any]) -> None:
            self.welcome = data
            self._token_expires(data.get("expires_at"))
            self.session_id = data.get("session_id", self.session_id)
            self._offsets = {}
            for result in data.get("rooms", ()):
                if "error" not in result:
                    self._track_join(result, since.get(result["room"]))

        try:
            return await self._command("connect", on_welcome, token=self.token,
                                       session_id=self.session_id, rooms=rooms or None)
        except BaseException:
            await self._shutdown()
            raise

    # --- token refresh ------------------------------------------------------------------
    async def refresh(self, token: str | None = None) -> float:
        """Swap in a new token on the live socket (from the token callable when not given).

        Returns the new expiry (unix seconds). Raises CommandFailed: `unauthorized`
        leaves the old token in force; `forbidden` (another user) closes with 4001.
        """
        fresh = token if token is not None else await self._fresh_token()
        reply = await self._command("refresh", token=fresh)
        self.token = fresh
        self.refreshes += 1
        self._token_expires(reply.get("expires_at"))
        assert self.expires_at is not None
        return self.expires_at

    async def _fresh_token(self) -> str:
        source = self._token_source
        if source is None:
            return self.token
        value = source()
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str) or not value:
            raise TypeError(f"the token callable returned {type(value).__name__}, not a token")
        return value

    def _token_expires(self, expires_ms: Any) -> None:
        """Note the expiry and, with a token callable, plan the refresh before it."""
        self.expires_at = expires_ms / 1000 if isinstance(expires_ms, int | float) else None
        if self._token_source is None or self.expires_at is None:
            return
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_loop(),
                                                  name="goldwire-client-refresh")

    async def _refresh_loop(self) -> None:
        """Refresh `refresh_margin` before expiry (half the remaining life if shorter)."""
        while self.expires_at is not None and self._ended is None:
            left = self.expires_at - time.time()
            await asyncio.sleep(max(0.0, left - min(self.refresh_margin, left / 2)))
            if self._ended is not None:
                return
            try:
                await self.refresh()
            except Disconnected:
                return
            except Exception as exc:  # the callable is the user's code: any error, retry
                log.warning("token refresh failed (retrying while the token lasts): %s", exc)
                if time.time() >= self.expires_at:
                    return
                await asyncio.sleep(REFRESH_RETRY)

    # --- commands -----------------------------------------------------------------------
    async def join(self, room: str, since: str | None = None) -> dict[str, Any]:
        """Join `room`; with `since`, the messages after it follow the reply (see `recovered`)."""
        return await self._command("join", lambda data: self._track_join(data, since),
                                   room=room, since=since)

    async def leave(self, room: str) -> dict[str, Any]:
        return await self._command("leave", lambda data: self._offsets.pop(room, None), room=room)

    async def publish(self, room: str, type: str, data: Mapping[str, Any]) -> str:
        """Publish to a room (`user_message` or `document_update`); returns the offset."""
        reply = await self._command("publish", room=room, type=type, data=dict(data))
        return str(reply["offset"])

    async def send(self, user: str, data: Mapping[str, Any]) -> int:
        """Send a `user_message` to `user`; returns how many of their connections it reached."""
        reply = await self._command("send", user=user, data=dict(data))
        return int(reply["delivered"])

    async def status(self, status: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return await self._command("status", status=status,
                                   meta=dict(meta) if meta is not None else None)

    async def ping(self) -> float:
        """A `ping` round trip; returns its duration in seconds."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self._command("ping")
        return loop.time() - start

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Any other command (`session`, `prefs`, ...): returns the reply's data."""
        return await self._command(op, **fields)

    async def _command(
        self, op: str, on_reply: Callable[[dict[str, Any]], Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        ws = self._ws
        if ws is None or self._ended is not None:
            raise self._ended or Disconnected(self.close_code, "not connected")
        ref = next(self._refs)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ref] = _Pending(future, on_reply)
        frame = {"op": op, "ref": ref, **{k: v for k, v in fields.items() if v is not None}}
        try:
            await ws.send(json.dumps(frame))
            return await asyncio.wait_for(future, self.reply_timeout)
        except ConnectionClosed as exc:
            raise Disconnected(ws.close_code, ws.close_reason or "") from exc
        except TimeoutError:
            raise CommandTimeout(f"no reply to {op} within {self.reply_timeout}s") from None
        finally:
            self._pending.pop(ref, None)

    # --- messages ------------------------------------------------------------------------
    async def next_message(self, timeout: float | None = None) -> ServerMessage:
        """The next frame that is not a command reply.

        Raises TimeoutError after `timeout` seconds without one, and
        Disconnected once the socket has closed and every queued frame was read.
        """
        while True:
            if self._ended is not None and self._queue.empty():
                raise self._ended
            item = await asyncio.wait_for(self._queue.get(), timeout)
            if isinstance(item, ServerMessage):
                return item
            if item.generation == self._generation:
                raise item.error
            # The end of a socket that reconnect() has since replaced: not an end for the reader.

    def __aiter__(self) -> GoldwireClient:
        return self

    async def __anext__(self) -> ServerMessage:
        try:
            return await self.next_message()
        except Disconnected:
            raise StopAsyncIteration from None

    @property
    def last_offsets(self) -> dict[str, str | None]:
        """Joined room → last offset seen there (a copy)."""
        return dict(self._offsets)

    @property
    def close_code(self) -> int | None:
        """The close code of the current socket once it has closed (1006: no close frame)."""
        return self._ws.close_code if self._ws is not None else None

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason if self._ws is not None else None

    # --- the reader ----------------------------------------------------------------------
    async def _read(self, ws: ClientConnection, generation: int) -> None:
        try:
            async for text in ws:
                self._on_frame(text)
        except ConnectionClosed:
            pass  # close_code tells how; the finally block reports it
        finally:
            ended = Disconnected(ws.close_code, ws.close_reason or "")
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(ended)
            if generation == self._generation:
                self._ended = ended
            self._queue.put_nowait(_Closed(generation, ended))

    def _on_frame(self, text: str | bytes) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            log.warning("dropped a frame that is not JSON: %.200r", text)
            return
        if not isinstance(frame, dict):
            log.warning("dropped a frame that is not an object: %.200r", text)
            return
        ref = frame.get("ref")
        pending = self._pending.get(ref) if isinstance(ref, int) else None
        if pending is not None:
            self._resolve(pending, frame)
            return
        msg = ServerMessage.from_frame(frame)
        if not self._track_message(msg):
            self._queue.put_nowait(msg)

    def _resolve(self, pending: _Pending, frame: dict[str, Any]) -> None:
        if pending.future.done():
            return  # timed out meanwhile
        raw_data = frame.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        if frame.get("type") == "error":
            pending.future.set_exception(CommandFailed(
                str(data.get("code", "internal")), str(data.get("message", "")), frame.get("ref")))
            return
        if pending.on_reply is not None:
            pending.on_reply(data)
        pending.future.set_result(data)

    def _track_join(self, result: Mapping[str, Any], since: str | None) -> None:
        """Start a room's offset where the messages that follow the join reply pick up."""
        room = result["room"]
        if since is not None and result.get("recovered"):
            self._offsets[room] = since  # the replay that follows moves it forward
        else:
            self._offsets[room] = result.get("offset")

    def _track_message(self, msg: ServerMessage) -> bool:
        """Advance the room's offset; True when the message is a duplicate to drop."""
        room = msg.room
        if room is None or room not in self._offsets:
            return False
        if msg.type == "room_update":
            kind = msg.data.get("kind")
            if kind == "resync":
                self._offsets[room] = None  # offsets restart after the lost history
            elif kind in ("closed", "kicked"):
                self._offsets.pop(room, None)
            return False
        if msg.offset is None:
            return False
        last = self._offsets[room]
        if last is not None and parse_offset(msg.offset) <= parse_offset(last):
            if self.dedupe:
                self.duplicates_dropped += 1
                return True
            return False
        self._offsets[room] = msg.offset
        return False

    # --- closing -------------------------------------------------------------------------
    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket and wait for the reader to finish; `close_code` is then set."""
        await self._shutdown(code, reason)

    aclose = close

    async def _shutdown(self, code: int = 1000, reason: str = "") -> None:
        ws, reader, refresher = self._ws, self._reader, self._refresher
        if refresher is not None and refresher is not asyncio.current_task():
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
        self._refresher = None
        if ws is not None:
            await ws.close(code, reason)
        if reader is not None:
            await asyncio.gather(reader, return_exceptions=True)

    async def __aenter__(self) -> GoldwireClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
