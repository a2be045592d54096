"""ROOM_OPTIONS: rules by room pattern, first match wins, mistakes fail at start."""

from __future__ import annotations

import pytest

from goldwire.gateway.settings import GatewaySettings
from goldwire.protocol.room_options import DEFAULT, RoomOptions, RoomOptionsError, RoomPolicy

RULES = ('[{"pattern": "lobby:*", "presence": false},'
         ' {"pattern": "doc:big-*", "presence": false, "history_size": 50},'
         ' {"pattern": "doc:*", "history_size": 200}]')


def test_first_matching_rule_wins_and_the_rest_get_defaults() -> None:
    policy = RoomPolicy.parse(RULES)
    assert policy.for_room("lobby:town-hall") == RoomOptions(presence=False)
    assert policy.for_room("doc:big-brief") == RoomOptions(presence=False, history_size=50)
    assert policy.for_room("doc:42") == RoomOptions(history_size=200)
    assert policy.for_room("chat:1") is DEFAULT
    assert policy.for_room("Lobby:x") is DEFAULT  # case-sensitive, like room names


def test_no_rules_means_defaults_everywhere() -> None:
    for text in ("", "  ", None, "[]"):
        assert RoomPolicy.parse(text).for_room("anything") is DEFAULT


@pytest.mark.parametrize(("text", "says"), [
    ("{", "not JSON"),
    ('{"pattern": "x"}', "JSON list"),
    ('["x"]', "must be an object"),
    ('[{"presence": false}]', "'pattern'"),
    ('[{"pattern": "x", "presence": "no"}]', "'presence'"),
    ('[{"pattern": "x", "history_size": 0}]', "'history_size'"),
    ('[{"pattern": "x", "history_size": true}]', "'history_size'"),
    ('[{"pattern": "x", "presense": false}]', "unknown option"),
])
def test_a_bad_rule_is_refused_naming_it(text: str, says: str) -> None:
    with pytest.raises(RoomOptionsError, match=says):
        RoomPolicy.parse(text)


def test_the_gateway_refuses_to_start_with_a_bad_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOM_OPTIONS", '[{"pattern": "x", "presence": 1}]')
    with pytest.raises(ValueError, match=r"ROOM_OPTIONS\[0\]: 'presence'"):
        GatewaySettings()


def test_the_cache_stays_bounded() -> None:
    policy = RoomPolicy.parse(RULES)
    for i in range(25_000):
        policy.for_room(f"doc:{i}")
    assert len(policy._cache) <= 10_000
