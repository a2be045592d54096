"""Which service processes `goldwire up` starts, as data.

Why data: each service (gateway now; presence, sessions, activity later)
ships as a package plus a `goldwire <kind>` subcommand. `goldwire up` starts
a kind only when its package is importable, so adding a service never means
editing the supervisor: add the package and the subcommand, and it runs.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceKind:
    """One kind of service process: its subcommand and the package it needs."""

    name: str
    module: str

    def argv(self, python: str = sys.executable) -> list[str]:
        """The command that runs one process of this kind."""
        return [python, "-m", "goldwire.cli", self.name]


SERVICE_KINDS: tuple[ServiceKind, ...] = (
    ServiceKind("gateway", "goldwire.gateway"),
    ServiceKind("presence", "goldwire.presence"),
    ServiceKind("sessions", "goldwire.sessions"),
    ServiceKind("activity", "goldwire.activity"),
)


def module_exists(name: str) -> bool:
    """True if `name` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package raises
        return False


def available_kinds(kinds: Iterable[ServiceKind] = SERVICE_KINDS) -> list[ServiceKind]:
    """The kinds whose package is installed, in declaration order."""
    return [kind for kind in kinds if module_exists(kind.module)]
