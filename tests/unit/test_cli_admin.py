"""`goldwire admin`: the request each subcommand makes, and where the API key comes from."""

from __future__ import annotations

import pytest

from goldwire.cli.admin import api_key, request_for
from goldwire.cli.main import build_parser


def parse(*argv: str):
    return build_parser().parse_args(["admin", *argv])


@pytest.mark.parametrize(("argv", "expected"), [
    (["connections", "a/b"], ("GET", "/v1/admin/users/a%2Fb/connections", None,
                              {"tenant": "default"})),
    (["room", "doc:1", "--tenant", "t1"], ("GET", "/v1/admin/rooms/doc%3A1", None,
                                           {"tenant": "t1"})),
    (["disconnect", "ada"], ("POST", "/v1/admin/users/ada/disconnect", {"tenant": "default"},
                             None)),
    (["disconnect", "ada", "--code", "4100", "--reason", "bye"],
     ("POST", "/v1/admin/users/ada/disconnect",
      {"tenant": "default", "code": 4100, "reason": "bye"}, None)),
    (["kick", "doc:1", "ada"], ("POST", "/v1/admin/rooms/doc%3A1/kick",
                                {"tenant": "default", "user": "ada"}, None)),
    (["close", "doc:1", "--reason", "done"], ("POST", "/v1/admin/rooms/doc%3A1/close",
                                              {"tenant": "default", "reason": "done"}, None)),
])
def test_each_subcommand_makes_its_call(argv, expected) -> None:
    args = parse(*argv)
    assert request_for(args.action, args) == expected


def test_api_key_from_flag_else_first_of_api_keys() -> None:
    assert api_key("given", {"API_KEYS": "a,b"}) == "given"
    assert api_key(None, {"API_KEYS": " a , b"}) == "a"
    assert api_key(None, {}) == ""
