"""docs/openapi/ holds every process's OpenAPI document as it serves it; regenerate with
`python -m goldwire.cli.openapi docs/openapi` when a route or model changes."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from goldwire.cli.openapi import apps, documents

FOLDER = Path(__file__).resolve().parents[2] / "docs" / "openapi"


def test_the_checked_in_documents_are_current() -> None:
    fresh = documents()
    assert sorted(p.name for p in FOLDER.glob("*.json")) == sorted(fresh)
    stale = [name for name, text in fresh.items() if (FOLDER / name).read_text() != text]
    assert not stale, f"regenerate: python -m goldwire.cli.openapi docs/openapi ({stale})"


def test_each_process_serves_its_document_and_the_docs_page() -> None:
    for name, make in apps().items():
        client = TestClient(make())  # not started: these routes need no Redis
        assert client.get("/openapi.json").json() == json.loads((FOLDER / f"{name}.json")
                                                                .read_text()), name
        page = client.get("/docs")
        assert page.status_code == 200 and "swagger" in page.text.lower(), name
