"""Goldwire wire protocol v1 as pure data: no I/O, imports nothing of Goldwire's."""

from goldwire.protocol.codes import CLOSE_TABLE, CloseCode, CloseInfo, ErrorCode, Reconnect
from goldwire.protocol.commands import (
    COMMAND_TYPES,
    OPS,
    Command,
    Connect,
    Join,
    Leave,
    Ping,
    Prefs,
    Publish,
    Refresh,
    RoomJoin,
    Send,
    Session,
    Status,
    parse_command,
)
from goldwire.protocol.errors import BadFrame, FrameTooLarge, GoldwireError, ProtocolError
from goldwire.protocol.keys import Keys
from goldwire.protocol.messages import Message, MessageType, encode, error, reply
from goldwire.protocol.names import DEFAULT_TENANT, is_room, is_tenant, room_matches
from goldwire.protocol.offsets import ZERO_OFFSET, format_offset, is_offset, parse_offset

__all__ = [
    "CLOSE_TABLE", "COMMAND_TYPES", "DEFAULT_TENANT", "OPS", "ZERO_OFFSET", "BadFrame",
    "CloseCode", "CloseInfo", "Command", "Connect", "ErrorCode", "FrameTooLarge",
    "GoldwireError", "Join", "Keys", "Leave", "Message", "MessageType", "Ping", "Prefs",
    "ProtocolError", "Publish", "Reconnect", "Refresh", "RoomJoin", "Send", "Session", "Status",
    "encode", "error", "format_offset", "is_offset", "is_room", "is_tenant",
    "parse_command", "parse_offset", "reply", "room_matches",
]
