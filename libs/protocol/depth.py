"""How deeply a JSON value nests: bounded, because deep nesting costs every reader.

Python's JSON decoder recurses: a 60 KB frame of `[[[[...` raises RecursionError from
deep inside it, and every later reader (pydantic, the encoder, the services, a browser)
pays again. Goldwire refuses values nested deeper than MAX_JSON_DEPTH, which no real
document change or message needs, with an error that says so.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_JSON_DEPTH = 32


class TooDeep(ValueError):
    """A JSON value nested deeper than the limit."""


def check_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise TooDeep when `value` (parsed JSON) nests more than `limit` containers deep.

    Iterative, and it only visits containers, so a wide flat value costs one pass."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise TooDeep(f"JSON nested deeper than {limit} levels")
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))


def loads_bounded(data: str | bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` that refuses deep nesting with TooDeep instead of RecursionError."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise TooDeep(f"JSON nested deeper than {limit} levels") from None
    if isinstance(value, (dict, list)):
        check_depth(value, limit)
    return value


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    check_depth(value)  # TooDeep is a ValueError: pydantic reports it as a field error
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded)]
"""A JSON object field of an HTTP body or command, nested at most MAX_JSON_DEPTH deep."""
