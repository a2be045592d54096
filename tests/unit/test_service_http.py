"""The one `Authorization: Bearer` parser and the constant-time key check every
HTTP API and the WebSocket upgrade use."""

from __future__ import annotations

import pytest

from goldwire.service.http import bearer_token, known_key


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"),
    ("bearer abc", "abc"),
    ("BEARER  abc ", "abc"),
    ("Bearer a.b.c", "a.b.c"),
    ("Basic abc", None),
    ("Bearer", None),
    ("Bearer   ", None),
    ("", None),
    (None, None),
    ("abc", None),
])
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_known_key() -> None:
    keys = frozenset({"k-one", "k-two"})
    assert known_key("k-two", keys)
    assert not known_key("k-three", keys)
    assert not known_key("k-on", keys)
    assert not known_key("", frozenset())
