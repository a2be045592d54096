"""The AsyncAPI 3 document of protocol v1, generated from the models.

`python -m goldwire.protocol.asyncapi > docs/asyncapi.json` writes it; a test
fails when the checked-in copy is stale. Close and error codes travel as
`x-close-codes` / `x-error-codes` extensions, from the same tables the
gateway uses.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from goldwire.protocol import messages as m
from goldwire.protocol.codes import CLOSE_TABLE, ErrorCode
from goldwire.protocol.commands import COMMAND_TYPES
from goldwire.protocol.http import BatchRequest, BatchResult, PublishRequest, PublishResult

REF = "#/components/schemas/{model}"

# What each server message type carries in `data`.
SERVER_MESSAGES: dict[m.MessageType, tuple[str, list[type[BaseModel]]]] = {
    m.MessageType.SYSTEM_MESSAGE: (
        "A reply to a command (same `ref`), or a server notice (e.g. preferences changed).",
        [m.ConnectReply, m.JoinResult, m.LeaveReply, m.PublishReply, m.SendReply,
         m.StatusReply, m.PongReply, m.SessionReply, m.PrefsReply, m.RefreshReply]),
    m.MessageType.USER_MESSAGE: ("A room message, or a direct `send` (with `from`).", []),
    m.MessageType.DOCUMENT_UPDATE: ("A document change in a room; carries `offset`.", []),
    m.MessageType.PRESENCE_UPDATE: ("Room presence: full `state` after a join, then `diff`s.",
                                    [m.PresenceState, m.PresenceDiff]),
    m.MessageType.ROOM_UPDATE: ("Room-level events (resync, closed, kicked, counts).",
                                [m.RoomUpdate]),
    m.MessageType.NOTIFICATION: ("A user's notification, also kept in their inbox.", []),
    m.MessageType.ERROR: ("A failed command (same `ref`) or a refused frame.", [m.ErrorData]),
}


def _schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [*COMMAND_TYPES, m.Message, PublishRequest, PublishResult,
                                     BatchRequest, BatchResult]
    for _, data_models in SERVER_MESSAGES.values():
        models += data_models
    _, schema = models_json_schema([(model, "validation") for model in models],
                                   ref_template=REF)
    return dict(sorted(schema["$defs"].items()))


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def build() -> dict[str, Any]:
    """The whole document as a JSON-ready dict (deterministic: sorted, no timestamps)."""
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for command in COMMAND_TYPES:
        op = command.model_fields["op"].annotation.__args__[0]  # type: ignore[union-attr]
        messages[op] = {
            "name": op,
            "title": f"{op} command",
            "summary": (command.__doc__ or f"The {op} command.").strip().splitlines()[0],
            "payload": {"$ref": REF.format(model=command.__name__)},
        }
        operations[f"receive{_camel(op)}"] = {
            "action": "receive",
            "channel": {"$ref": "#/channels/ws"},
            "summary": f"The gateway receives `{op}` and answers with the same `ref`.",
            "messages": [{"$ref": f"#/channels/ws/messages/{op}"}],
        }
    for type_, (summary, data_models) in SERVER_MESSAGES.items():
        messages[type_.value] = {
            "name": type_.value,
            "title": type_.value,
            "summary": summary,
            "payload": {"$ref": REF.format(model="Message")},
            **({"x-data": [{"$ref": REF.format(model=d.__name__)} for d in data_models]}
               if data_models else {}),
        }
        operations[f"send{_camel(type_.value)}"] = {
            "action": "send",
            "channel": {"$ref": "#/channels/ws"},
            "messages": [{"$ref": f"#/channels/ws/messages/{type_.value}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Goldwire wire protocol",
            "version": "1.0.0",
            "description": "JSON text frames over WebSocket at /ws; see shared/protocol.md. "
                           "The contract only grows: new optional fields, ops and data kinds.",
        },
        "defaultContentType": "application/json",
        "servers": {"gateway": {"host": "localhost:8000", "protocol": "ws", "pathname": "/ws"}},
        "channels": {"ws": {"address": "/ws",
                            "messages": {k: {"$ref": f"#/components/messages/{k}"}
                                         for k in messages}}},
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": _schemas(),
        },
        "x-close-codes": [
            {"code": int(info.code), "meaning": info.meaning,
             "reconnect": info.reconnect.value, "recover": info.recover}
            for info in CLOSE_TABLE.values()
        ],
        "x-error-codes": [code.value for code in ErrorCode],
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
