"""The browser SDK (libs/client-js) from pytest: its committed build is current, its close-code
table matches the server's, and its own Node tests pass against real gateways and Redis.

The Node tests start their own private Redis and Goldwire processes from this Python
(`GOLDWIRE_PYTHON`), so they run wherever `make test` runs; `npm ci` is run first when the
package's dev dependencies are not installed yet.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from goldwire.protocol.codes import CLOSE_TABLE
from goldwire.protocol.commands import COMMAND_TYPES

SDK = Path(__file__).resolve().parents[2] / "libs" / "client-js"
NPM = shutil.which("npm")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NPM is None or NODE is None, reason="needs Node 20 and npm")


@pytest.fixture(scope="module")
def sdk_installed() -> Path:
    if not (SDK / "node_modules" / ".bin" / "esbuild").exists():
        subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=SDK, check=True, timeout=600)
    return SDK


def test_committed_build_is_current(sdk_installed: Path) -> None:
    """services/gateway/static/goldwire.js is what the build makes from src (never edited)."""
    done = subprocess.run([NPM, "run", "--silent", "check-built"], cwd=sdk_installed,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_close_code_table_matches_the_server(sdk_installed: Path) -> None:
    served = SDK.parent.parent / "services" / "gateway" / "static" / "goldwire.js"
    script = (f"import({json.dumps(served.as_uri())})"
              ".then(m => console.log(JSON.stringify(m.CLOSE_TABLE)))")
    out = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    sdk_table = {int(code): info for code, info in json.loads(out).items()}
    server_table = {int(code): {"meaning": info.meaning, "reconnect": info.reconnect.value,
                                "recover": info.recover}
                    for code, info in CLOSE_TABLE.items()}
    assert sdk_table == server_table


def test_sdk_node_tests_against_real_gateways(sdk_installed: Path) -> None:
    env = dict(os.environ, GOLDWIRE_PYTHON=sys.executable)
    done = subprocess.run([NPM, "test"], cwd=sdk_installed, env=env, capture_output=True,
                          text=True, timeout=600)
    summary = [line for line in done.stdout.splitlines()
               if line.startswith(("not ok", "# SDK_", "# pass", "# fail"))]
    print("\n".join(summary))
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def _ts_fields(body: str) -> dict[str, bool]:
    """`name -> optional` for the fields of a TypeScript object type body (no index keys)."""
    while re.search(r"\{[^{}]*\}", body):  # nested object types are not fields of this one
        body = re.sub(r"\{[^{}]*\}", "object", body)
    fields = {}
    for part in re.split(r"[;\n]", body):
        match = re.match(r"\s*(\w+)(\?)?:", part)
        if match:
            fields[match.group(1)] = bool(match.group(2))
    return fields


def _schema_fields(schema: dict) -> dict[str, bool]:
    required = set(schema.get("required", []))
    return {name: name not in required for name in schema.get("properties", {})}


def test_sdk_wire_types_match_the_asyncapi_document() -> None:
    """types.ts is written by hand, and checked here against docs/asyncapi.json (generated
    from the Python models): the same fields for every message, reply and command, and
    nothing the contract requires marked optional in the SDK."""
    schemas = json.loads((SDK.parent.parent / "docs" / "asyncapi.json").read_text())[
        "components"]["schemas"]
    source = (SDK / "src" / "types.ts").read_text()
    checked = 0
    for name, body in re.findall(r"export interface (\w+)(?:<[^>]*>)? \{\n(.*?)\n\}", source,
                                 re.S):
        if name not in schemas:
            continue
        ts, contract = _ts_fields(body), _schema_fields(schemas[name])
        assert set(ts) == set(contract), f"{name}: SDK {sorted(ts)} != contract {sorted(contract)}"
        loose = [f for f, optional in ts.items() if optional and not contract[f]]
        assert not loose, f"{name}: required by the contract but optional in the SDK: {loose}"
        checked += 1
    union = re.search(r"export type Command =(.*?);\n\n", source, re.S)
    assert union, "types.ts has a Command union"
    commands = {}
    for body in re.findall(r"\{ (op: \"\w+\".*?) \}", union.group(1)):
        fields = _ts_fields(body)
        op = re.match(r'op: "(\w+)"', body).group(1)  # type: ignore[union-attr]
        commands[op.capitalize()] = fields
    for name, fields in commands.items():
        contract = _schema_fields(schemas[name])
        contract.pop("ref")  # the SDK adds `ref` to every command itself
        assert set(fields) == set(contract), f"{name}: {sorted(fields)} != {sorted(contract)}"
    assert set(commands) == {c.__name__ for c in COMMAND_TYPES}, "every command is in the SDK"
    assert checked >= 15, f"only {checked} interfaces matched a schema"
