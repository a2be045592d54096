"""activity_keys.lua spells the key families RECORD builds inside its call; they must be
the parts goldwire.protocol.keys builds the same keys with, or the service would write
keys its API never reads."""

from __future__ import annotations

import re
from pathlib import Path

from goldwire.activity import scripts
from goldwire.protocol.keys import ACTIVITY_PARTS

HELPER = Path(scripts.__file__).with_name("activity_keys.lua")


def test_the_lua_families_are_the_protocols_parts() -> None:
    families = dict(re.findall(r"^\s*(\w+) = tag \.\. '([^']*)',", HELPER.read_text(), re.M))
    assert len(families) >= 7
    assert families == {name: ACTIVITY_PARTS[name] for name in families}


def test_record_gets_every_fixed_key_and_no_family_by_name() -> None:
    families = set(re.findall(r"^\s*(\w+) = tag \.\.", HELPER.read_text(), re.M))
    assert set(scripts.RECORD.keys) <= set(ACTIVITY_PARTS)
    assert not families & set(scripts.RECORD.keys)
    for name, part in ACTIVITY_PARTS.items():  # a fixed key ends without a ':' to add to
        if name in scripts.RECORD.keys:
            assert not part.endswith(":"), name
