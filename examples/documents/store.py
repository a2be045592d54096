"""Documents and their comments, kept in memory and, when given a path, in a JSON file.

This is the application's own data, not Goldwire's: Goldwire only carries the
changes live. A JSON file rewritten on every change is enough for a demo that
must survive a restart of the app process and nothing more.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class StoreError(Exception):
    """Base of this module's errors."""


class NotFound(StoreError):
    """No document with that id."""


class VersionConflict(StoreError):
    """The edit was based on an older version; `current` is the document as it is now."""

    def __init__(self, current: Document) -> None:
        super().__init__(f"document {current.id} is at version {current.version}")
        self.current = current


@dataclass
class Comment:
    id: str
    author: str
    text: str
    ts: int


@dataclass
class Document:
    id: str
    title: str
    owner: str
    body: str
    version: int = 1
    updated_by: str = ""
    updated_at: int = 0
    comments: list[Comment] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What the list page needs (no body, no comments)."""
        return {"id": self.id, "title": self.title, "owner": self.owner,
                "version": self.version, "updated_by": self.updated_by,
                "comments": len(self.comments)}

    def wire(self) -> dict[str, Any]:
        return asdict(self)


SEED = (
    Document("1", "Lease agreement — 14 Harbour St", "alice",
             "1. Parties\nThe Landlord and the Tenant agree as follows.\n\n"
             "2. Term\nTwelve months from the start date."),
    Document("2", "NDA — Acme Holdings", "bob",
             "Each party keeps the other's Confidential Information secret "
             "for five years after disclosure."),
    Document("3", "Settlement memo — Rivera v. Northwind", "carol",
             "Summary of the mediation and the terms offered so far."),
)


class DocumentStore:
    """The documents by id; every change is written through to `path` when one is given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._docs: dict[str, Document] = {}
        if path is not None and path.exists():
            for raw in json.loads(path.read_text()):
                comments = [Comment(**c) for c in raw.pop("comments", [])]
                self._docs[raw["id"]] = Document(**raw, comments=comments)
        else:
            for doc in SEED:
                self._docs[doc.id] = Document(**{**asdict(doc), "comments": []})

    def all(self) -> list[Document]:
        return list(self._docs.values())

    def get(self, doc_id: str) -> Document:
        try:
            return self._docs[doc_id]
        except KeyError:
            raise NotFound(doc_id) from None

    def edit(self, doc_id: str, body: str, base_version: int, by: str) -> Document:
        """Replace the body if `base_version` is current; raises VersionConflict if not."""
        doc = self.get(doc_id)
        if base_version != doc.version:
            raise VersionConflict(doc)
        doc.body, doc.version = body, doc.version + 1
        doc.updated_by, doc.updated_at = by, int(time.time() * 1000)
        self._save()
        return doc

    def comment(self, doc_id: str, author: str, text: str) -> Comment:
        doc = self.get(doc_id)
        comment = Comment(str(len(doc.comments) + 1), author, text, int(time.time() * 1000))
        doc.comments.append(comment)
        self._save()
        return comment

    def _save(self) -> None:
        """Write the whole file atomically (a crash mid-write leaves the old one)."""
        if self.path is None:
            return
        data = json.dumps([doc.wire() for doc in self._docs.values()], indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            out.write(data)
        os.replace(tmp, self.path)
