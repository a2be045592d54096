"""Every setting a process reads is in the README's configuration table: an operator
looks there, and a setting nobody can find is one nobody can tune."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from goldwire.activity.settings import ActivitySettings
from goldwire.gateway.settings import GatewaySettings
from goldwire.presence.settings import PresenceSettings
from goldwire.sessions.settings import SessionsSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def documented() -> set[str]:
    """The names in the first cell of each table row (`A` / `B` rows name two)."""
    rows = re.findall(r"^\| (`[A-Z][A-Z0-9_]*`(?: / `[A-Z][A-Z0-9_]*`)*) \|", README.read_text(),
                      re.M)
    return {name for row in rows for name in re.findall(r"`([A-Z0-9_]+)`", row)}


def env_names(settings: type[BaseSettings]) -> list[str]:
    return [str(f.validation_alias or name).upper()
            for name, f in settings.model_fields.items()]


@pytest.mark.parametrize("settings", [GatewaySettings, PresenceSettings, SessionsSettings,
                                      ActivitySettings], ids=lambda s: s.__name__)
def test_every_setting_is_in_the_readme_table(settings: type[BaseSettings]) -> None:
    missing = [n for n in env_names(settings) if n not in documented()]
    assert not missing, f"not in README.md's configuration table: {missing}"


def test_the_table_is_found() -> None:
    assert {"REDIS_URL", "GATEWAY_PORT", "ACTIVITY_BATCH"} <= documented()
