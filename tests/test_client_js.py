"""The browser SDK (libs/client-js) from pytest: its committed build is current, its close-code
table matches the server's, and its own Node tests pass against real gateways and Redis.

The Node tests start their own private Redis and Goldwire processes from this Python
(`GOLDWIRE_PYTHON`), so they run wherever `make test` runs; `npm ci` is run first when the
package's dev dependencies are not installed yet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from goldwire.protocol.codes import CLOSE_TABLE

SDK = Path(__file__).resolve().parent.parent / "libs" / "client-js"
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
