"""The documents app's routes: login picker, pages, and the JSON API the pages call.

The app is the backend a frontend team already has: it decides who the user
is (here a cookie set by the login picker — a demo, not authentication), mints
their Goldwire token with the gateway's JWT_SECRET, and publishes what it
saves. It never talks to Redis and never relays frames: browsers hold their
own socket to the gateway.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from examples.documents.live import LiveFeed
from examples.documents.store import DocumentStore, NotFound, VersionConflict
from goldwire.cli.tokens import mint_token
from goldwire.client import Publisher, open_publisher

STATIC = Path(__file__).parent / "static"
COOKIE = "documents_user"
TOKEN_TTL = 3600

USERS: dict[str, dict[str, str]] = {
    "alice": {"id": "alice", "name": "Alice Park", "role": "Partner"},
    "bob": {"id": "bob", "name": "Bob Okafor", "role": "Associate"},
    "carol": {"id": "carol", "name": "Carol Diaz", "role": "Paralegal"},
}


@dataclass(frozen=True)
class Settings:
    """Where the gateway is and the secrets shared with it (read from the environment)."""

    gateway_http: str
    jwt_secret: str
    api_key: str
    audience: str | None = None
    issuer: str | None = None
    data_file: Path | None = None

    @property
    def gateway_ws(self) -> str:
        return self.gateway_http.replace("http", "ws", 1).rstrip("/") + "/ws"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """GOLDWIRE_HTTP, JWT_SECRET, API_KEYS (the first key), JWT_AUDIENCE/JWT_ISSUER,
        DOCUMENTS_FILE; empty values count as unset, as they do for Goldwire."""
        def get(name: str, default: str = "") -> str:
            return environ.get(name) or default

        secret, keys = get("JWT_SECRET"), get("API_KEYS")
        if not secret or not keys:
            raise SystemExit("documents example: set JWT_SECRET and API_KEYS "
                             "(the gateway's), or run `make demo`")
        data = get("DOCUMENTS_FILE")
        return cls(gateway_http=get("GOLDWIRE_HTTP", "http://127.0.0.1:8000").rstrip("/"),
                   jwt_secret=secret, api_key=keys.split(",")[0].strip(),
                   audience=get("JWT_AUDIENCE") or None, issuer=get("JWT_ISSUER") or None,
                   data_file=Path(data) if data else None)


class Edit(BaseModel):
    body: str = Field(max_length=20000)
    version: int  # the version this edit was based on


class NewComment(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


def create_app(settings: Settings, publisher: Publisher | None = None) -> FastAPI:
    """The app; `publisher` defaults to an HTTP publisher on the gateway."""
    store = DocumentStore(settings.data_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pub = publisher or open_publisher(settings.gateway_http, settings.api_key)
        app.state.feed = LiveFeed(pub)
        app.state.feed.start()
        try:
            yield
        finally:
            await app.state.feed.stop()
            await pub.aclose()

    app = FastAPI(title="Goldwire documents example", lifespan=lifespan)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def current_user(request: Request) -> dict[str, str]:
        user = USERS.get(request.cookies.get(COOKIE, ""))
        if user is None:
            raise HTTPException(401, "pick a user at /login")
        return user

    def page(name: str, request: Request, **values: Any) -> HTMLResponse:
        """A page from static/, with the config block (and import map) filled in."""
        user = USERS[request.cookies[COOKIE]] if request.cookies.get(COOKIE) in USERS else None
        config = {"gateway": settings.gateway_http, "ws": settings.gateway_ws, "user": user,
                  "users": USERS, **values}
        head = (
            # The SDK comes from the gateway (another origin): one place says where.
            '<script type="importmap">'
            + json.dumps({"imports": {"goldwire": settings.gateway_http + "/sdk/goldwire.js"}})
            + "</script>\n"
            '<script id="config" type="application/json">'
            + json.dumps(config).replace("</", "<\\/") + "</script>"
        )
        text = (STATIC / name).read_text().replace("<!-- config -->", head)
        return HTMLResponse(text)

    # --- pages ---------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> HTMLResponse:
        return page("login.html", request)

    @app.post("/login")
    async def login(request: Request) -> RedirectResponse:
        # A plain form post, parsed by hand: one field is not worth a multipart dependency.
        form = parse_qs((await request.body()).decode())
        user = (form.get("user") or [""])[0]
        if user not in USERS:
            raise HTTPException(400, f"unknown user {html.escape(user)!r}")
        response = RedirectResponse((form.get("next") or ["/"])[0], status_code=303)
        response.set_cookie(COOKIE, user, httponly=True, samesite="lax")
        return response

    @app.post("/logout")
    async def logout() -> RedirectResponse:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> Any:
        if request.cookies.get(COOKIE) not in USERS:
            return RedirectResponse("/login", status_code=303)
        return page("index.html", request)

    @app.get("/doc/{doc_id}", response_class=HTMLResponse)
    async def document_page(doc_id: str, request: Request) -> Any:
        if request.cookies.get(COOKIE) not in USERS:
            return RedirectResponse(f"/login?next=/doc/{doc_id}", status_code=303)
        try:
            store.get(doc_id)
        except NotFound:
            raise HTTPException(404, "no such document") from None
        return page("document.html", request, doc_id=doc_id)

    # --- API -----------------------------------------------------------------------------
    @app.get("/api/token")
    async def token(request: Request) -> dict[str, Any]:
        """A Goldwire token for the signed-in user: may join every document room.

        No `publish` rights: edits and comments go through this app, which saves
        them before anyone sees them.
        """
        user = current_user(request)
        tok = mint_token(settings.jwt_secret, user["id"], name=user["name"], rooms=["doc:*"],
                         ttl=TOKEN_TTL, audience=settings.audience, issuer=settings.issuer)
        return {"token": tok, "ttl": TOKEN_TTL}

    @app.get("/api/documents")
    async def documents(request: Request) -> list[dict[str, Any]]:
        current_user(request)
        return [doc.summary() for doc in store.all()]

    @app.get("/api/documents/{doc_id}")
    async def document(doc_id: str, request: Request) -> dict[str, Any]:
        current_user(request)
        try:
            return store.get(doc_id).wire()
        except NotFound:
            raise HTTPException(404, "no such document") from None

    @app.put("/api/documents/{doc_id}")
    async def edit(doc_id: str, edit: Edit, request: Request) -> Any:
        """Save, then publish `document_update` to `doc:<id>`; 409 with the current document
        when the edit was based on an old version."""
        user = current_user(request)
        try:
            doc = store.edit(doc_id, edit.body, edit.version, user["id"])
        except NotFound:
            raise HTTPException(404, "no such document") from None
        except VersionConflict as exc:
            return JSONResponse({"detail": "stale version", "document": exc.current.wire()},
                                status_code=409)
        changes = {"body": doc.body, "version": doc.version}
        by = {"id": user["id"], "name": user["name"]}
        request.app.state.feed.send(
            lambda pub, key: pub.document_updated(doc_id, changes, by=by, idempotency_key=key))
        return {"version": doc.version}

    @app.post("/api/documents/{doc_id}/comments")
    async def comment(doc_id: str, body: NewComment, request: Request) -> dict[str, Any]:
        """Save, show it live in the room, and notify the owner (unless they wrote it)."""
        user = current_user(request)
        try:
            doc = store.get(doc_id)
        except NotFound:
            raise HTTPException(404, "no such document") from None
        saved = store.comment(doc_id, user["id"], body.text)
        author = {"id": user["id"], "name": user["name"]}
        feed: LiveFeed = request.app.state.feed
        feed.send(lambda pub, key: pub.comment_added(doc_id, saved.id, author, saved.text,
                                                    idempotency_key=key))
        if doc.owner != user["id"]:
            title = f"{user['name']} commented on {doc.title}"
            feed.send(lambda pub, key: pub.user_notified(doc.owner, title, saved.text,
                                                        link=f"/doc/{doc_id}",
                                                        idempotency_key=key))
        return {"comment": {"id": saved.id, "author": saved.author, "text": saved.text,
                            "ts": saved.ts}}

    return app
