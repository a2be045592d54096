"""`make demo`: Goldwire (`goldwire up`) and the documents app, sharing their secrets.

Why a launcher and not two terminals: the app must mint tokens with the
gateway's JWT_SECRET, publish with one of its API_KEYS, and be on the
gateway's ALLOWED_ORIGINS (the pages import the SDK and call /v2/sync from the
app's origin). This script settles all three before starting either process,
so `goldwire up` needs no change: it keeps a JWT_SECRET or API_KEYS it is
given and generates only what is missing. Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time

import httpx

from goldwire.cli.procutil import parent_death_signal

READY_TIMEOUT = 60.0


def demo_env(environ: dict[str, str], app_port: int) -> dict[str, str]:
    """The environment both processes get: given values are kept, missing ones made up."""
    env = dict(environ)
    env["JWT_SECRET"] = env.get("JWT_SECRET") or secrets.token_urlsafe(32)
    env["API_KEYS"] = env.get("API_KEYS") or "demo-" + secrets.token_hex(16)
    gateway_port = env.get("GATEWAY_PORT") or "8000"
    env["GOLDWIRE_HTTP"] = env.get("GOLDWIRE_HTTP") or f"http://127.0.0.1:{gateway_port}"
    app_origins = [f"http://127.0.0.1:{app_port}", f"http://localhost:{app_port}"]
    given = [o for o in (env.get("ALLOWED_ORIGINS") or "").split(",") if o.strip()]
    env["ALLOWED_ORIGINS"] = ",".join(dict.fromkeys([*given, *app_origins]))
    env["GOLDWIRE_DEMO_URL"] = app_origins[0]  # `goldwire up` prints it with the others
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: {proc.args[-1]} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"demo: {url} did not answer within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.documents.demo")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT") or 8080))
    args = parser.parse_args()
    env = demo_env(dict(os.environ), args.port)
    start = {"env": env, "preexec_fn": parent_death_signal(signal.SIGTERM)}
    goldwire = subprocess.Popen([sys.executable, "-m", "goldwire.cli", "up"], **start)
    app = None
    try:
        # The whole stack, not only the gateway: the pages call /v2/sync at once.
        wait_ready(env["GOLDWIRE_HTTP"] + "/readyz?deep=1", goldwire)
        app = subprocess.Popen([sys.executable, "-m", "examples.documents",
                                "--port", str(args.port)], **start)
        url = f"http://127.0.0.1:{args.port}"
        wait_ready(url + "/login", app)
        print(f"\nDocuments example: open {url} (two browsers, or one private window, "
              "for two users). Ctrl-C stops everything.\n", flush=True)
        while goldwire.poll() is None and app.poll() is None:
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (app, goldwire):  # the app first: it publishes to the gateway
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    sys.exit(main())
