"""Room offsets: Redis Stream ids (`<ms>-<seq>`), compared as integer pairs.

Offsets travel as strings on the wire; comparing them as strings is wrong
(`"9-0" > "10-0"`), so every comparison goes through `parse_offset`.
"""

from __future__ import annotations

ZERO_OFFSET = "0-0"

Offset = tuple[int, int]


def parse_offset(value: str | bytes) -> Offset:
    """`"1732771234567-3"` → `(1732771234567, 3)`.

    Raises ValueError for anything that is not `<int>-<int>` with both parts >= 0.
    """
    if isinstance(value, bytes):
        value = value.decode("ascii")
    ms, sep, seq = value.partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit():
        raise ValueError(f"not an offset: {value!r}")
    return int(ms), int(seq)


def is_offset(value: str) -> bool:
    """True when `value` parses as an offset."""
    try:
        parse_offset(value)
    except ValueError:
        return False
    return True


def format_offset(offset: Offset) -> str:
    return f"{offset[0]}-{offset[1]}"
