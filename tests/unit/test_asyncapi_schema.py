"""docs/asyncapi.json is a valid AsyncAPI 3.0.0 document by the official JSON Schema
(npm `@asyncapi/specs`, a pinned dev dependency of libs/client-js: `npm ci` there
installs it), so AsyncAPI tools accept it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "libs/client-js/node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json"

pytestmark = pytest.mark.skipif(not SCHEMA.exists(), reason="needs `npm ci` in libs/client-js")


def errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]


def test_the_document_is_valid_asyncapi() -> None:
    doc = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    assert doc["asyncapi"] == "3.0.0"
    assert errors(doc) == []


def test_the_schema_refuses_a_broken_document() -> None:
    doc = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    del doc["info"]
    doc["channels"] = "not channels"
    assert len(errors(doc)) >= 2
