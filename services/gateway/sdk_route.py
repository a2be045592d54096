"""`GET /sdk/goldwire.js`: the browser SDK, built from libs/client-js, served by every gateway.

A page imports it with no build step (`import { Goldwire } from "<gateway>/sdk/goldwire.js"`).
The file is read once at import: it ships inside the package (package data) and never
changes while the process runs, so its ETag is a hash computed once. Browsers may reuse it
for five minutes and then revalidate (a 304 costs no body), so a deploy with a new SDK
reaches every page within minutes without a versioned URL.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

from fastapi import APIRouter, Request, Response

SDK_FILE = "goldwire.js"
CACHE_CONTROL = "public, max-age=300, must-revalidate"
MEDIA_TYPE = "text/javascript; charset=utf-8"

router = APIRouter()


def _load() -> tuple[bytes, str]:
    body = files("goldwire.gateway").joinpath("static", SDK_FILE).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


SDK_BODY, SDK_ETAG = _load()


@router.get("/sdk/goldwire.js", include_in_schema=False)
async def sdk(request: Request) -> Response:
    headers = {"ETag": SDK_ETAG, "Cache-Control": CACHE_CONTROL}
    wanted = request.headers.get("if-none-match", "")
    if SDK_ETAG in {tag.strip().removeprefix("W/") for tag in wanted.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(SDK_BODY, media_type=MEDIA_TYPE, headers=headers)
