"""The Lua loader: headers parsed into names, calls mapped by name, includes pasted.
Pure parsing, no Redis (the scripts themselves are tested against a real Redis)."""

from __future__ import annotations

import pytest

from goldwire.store.lua import LuaHeaderError, parse

SCRIPT = """\
-- Adds one.
-- KEYS[1] counter  the counter
-- KEYS[2] log      where each add is noted
-- ARGV[1] by       how much
-- ARGV[2..] notes  the rest: words to log
redis.call('INCRBY', KEYS[1], ARGV[1])
"""


def test_header_names_keys_and_args_in_order() -> None:
    script = parse("add.lua", SCRIPT)
    assert script.keys == ("counter", "log")
    assert script.args == ("by", "notes")
    assert script.variadic_args and not script.variadic_keys
    keys, args = script.split({"notes": ["a", "b"], "by": 2, "log": "L", "counter": "C"})
    assert keys == ["C", "L"]
    assert args == [2, "a", "b"]
    assert script.command(counter="C", log="L", by=1, notes=[]) == (
        "EVAL", script.source, 2, "C", "L", 1)


def test_a_missing_or_unknown_name_is_a_type_error() -> None:
    script = parse("add.lua", SCRIPT)
    with pytest.raises(TypeError, match="missing"):
        script.split({"counter": "C", "log": "L", "by": 1})
    with pytest.raises(TypeError, match=r"unexpected.*extra"):
        script.split({"counter": "C", "log": "L", "by": 1, "notes": [], "extra": 1})
    with pytest.raises(TypeError, match="missing"):
        script.split({"counter": "C", "log": "L", "by": 1, "typo": []})


@pytest.mark.parametrize("header", [
    "-- KEYS[2] b\n",                      # does not start at 1
    "-- KEYS[1] a\n-- KEYS[1] b\n",        # repeated position
    "-- ARGV[1..] a\n-- ARGV[2] b\n",      # variadic not last
    "-- KEYS[1] a\n-- ARGV[1] a\n",        # one name twice
])
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(LuaHeaderError):
        parse("bad.lua", header + "return 1\n")


def test_includes_are_pasted_once_where_they_stand() -> None:
    helpers = {"cmp.lua": "local function less(a, b) return a < b end\n"}
    script = parse("x.lua", "-- KEYS[1] k\n-- @include cmp.lua\nreturn less(1, 2)\n",
                   helpers.__getitem__)
    assert "local function less" in script.source
    assert "@include" not in script.source
    with pytest.raises(LuaHeaderError):
        parse("x.lua", "-- @include cmp.lua\n")
