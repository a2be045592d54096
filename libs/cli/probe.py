"""`goldwire probe`: the container health check, with nothing but the standard library.

Why a subcommand: the slim image has no curl or wget, and one image runs every
process, so the URL to probe comes from the container's environment
(`GOLDWIRE_PROBE_URL`, set per service by compose) instead of being baked in.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TextIO

DEFAULT_PROBE_URL = "http://127.0.0.1:8000/healthz"


def probe(url: str, timeout: float, out: TextIO) -> int:
    """0 when `url` answers 2xx within `timeout` seconds, else 1 (with the reason on stderr)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            print(f"{url}: {response.status}", file=out)
            return 0
    except urllib.error.HTTPError as exc:
        print(f"{url}: {exc.code}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


def probe_url(given: str | None, environ: Mapping[str, str]) -> str:
    return given or environ.get("GOLDWIRE_PROBE_URL") or DEFAULT_PROBE_URL
