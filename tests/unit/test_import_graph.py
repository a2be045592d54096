"""The shape the architecture promises, checked on the source: services meet only
through Redis and HTTP (no service imports another), the libraries import no
service, and libs/protocol is pure data (no Redis client, no Lua, no store)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "presence", "sessions", "activity")
PACKAGE_OF = {  # source folder -> its goldwire package
    **{f"services/{s}": f"goldwire.{s}" for s in SERVICES},
    **{f"libs/{lib}": f"goldwire.{lib}" for lib in
       ("protocol", "client", "store", "service", "streams", "cli")},
}


def imports(folder: str) -> dict[str, set[str]]:
    """Each module file of `folder` → the modules it imports (anywhere in the file)."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
        out[str(path.relative_to(ROOT))] = found
    return out


def arrows(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path} imports {module}" for path, modules in imports(folder).items()
            for module in sorted(modules)
            if any(module == f or module.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    others = tuple(f"goldwire.{s}" for s in SERVICES if s != service)
    assert arrows(f"services/{service}", others) == []


@pytest.mark.parametrize("lib", ["protocol", "client", "store", "service", "streams"])
def test_libraries_import_no_service(lib: str) -> None:
    assert arrows(f"libs/{lib}", tuple(f"goldwire.{s}" for s in SERVICES)) == []


def test_protocol_is_pure_data() -> None:
    assert arrows("libs/protocol", ("redis", "goldwire.store", "goldwire.service", "arq",
                                    "fastapi", "websockets", "httpx")) == []
    assert list((ROOT / "libs/protocol").rglob("*.lua")) == []
    for path in (ROOT / "libs/protocol").rglob("*.py"):
        assert "redis.call" not in path.read_text(), f"Lua in {path}"


def test_every_folder_is_mapped() -> None:
    """A new library or service must be added here, so the rules above cover it."""
    found = {str(p.parent.relative_to(ROOT)) for p in ROOT.glob("libs/*/__init__.py")}
    found |= {str(p.parent.relative_to(ROOT)) for p in ROOT.glob("services/*/__init__.py")}
    assert found == set(PACKAGE_OF)


def late_imports(folder: str, package: str) -> list[str]:
    """Imports of `package` inside a function body: each hides a cycle between modules."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if (isinstance(node, ast.ImportFrom) and node.module
                        and node.module.startswith(package)):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
    return found


def test_the_gateway_has_no_import_cycle_hidden_in_a_function() -> None:
    """connection ↔ handlers was such a cycle; the dispatcher is now passed in."""
    assert late_imports("services/gateway", "goldwire.gateway") == []
