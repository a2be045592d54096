"""Every .lua file in the repository: its header parses, every KEYS[i] and ARGV[i]
the body reads is declared, and every declared entry is read. A key reached any
other way would break on Redis Cluster; an unread entry is a stale header."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from goldwire.store.lua import parse

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for top in ("libs", "services") for p in (ROOT / top).rglob("*.lua"))
_USE = re.compile(r"\b(KEYS|ARGV)\[(\d+)\]")


def is_helper(path: Path) -> bool:
    """A file only ever pasted by `@include` (no header of its own)."""
    name = path.name
    return any(f"@include {name}" in p.read_text() for p in SCRIPTS if p != path)


@pytest.mark.parametrize("path", [p for p in SCRIPTS if not is_helper(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_entry_read_is_declared_and_every_declared_entry_is_read(path: Path) -> None:
    script = parse(path.name, path.read_text(), lambda h: (path.parent / h).read_text())
    body = "\n".join(line for line in script.source.splitlines()
                     if not line.lstrip().startswith("--"))
    used = {(kind, int(i)) for kind, i in _USE.findall(body)}
    declared = {("KEYS", i + 1) for i in range(len(script.keys))}
    declared |= {("ARGV", i + 1) for i in range(len(script.args))}
    undeclared = {u for u in used if u not in declared
                  and not (u[0] == "KEYS" and script.variadic_keys and u[1] > len(script.keys))
                  and not (u[0] == "ARGV" and script.variadic_args and u[1] > len(script.args))}
    assert not undeclared, f"read but not in the header: {sorted(undeclared)}"
    variadic = {("KEYS", len(script.keys))} if script.variadic_keys else set()
    variadic |= {("ARGV", len(script.args))} if script.variadic_args else set()
    unread = {d for d in declared - used if d not in variadic}
    assert not unread, f"declared but never read: {sorted(unread)}"


def test_scripts_were_found() -> None:
    assert len(SCRIPTS) >= 17
