"""Checks on the service's JSON answers that several test files make."""

from __future__ import annotations

import re
from typing import Any, Protocol


class _Getter(Protocol):
    """Litestar's TestClient or an httpx.Client on the service's base URL."""

    def get(self, url: str, **kwargs: Any) -> Any: ...


def error_of(response: Any, status: int) -> dict:
    """The `error` object of an error answer, after checking its status and the error contract's
    required fields (a message that says what to fix, and a type)."""
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["message"] and body["type"]
    return body


def check_citations(client: _Getter, text: str, citations: list[dict], collection: str = "wren") -> None:
    """Every [n] in `text` has a citation and every citation a marker; each citation's quote is
    exactly its span of the document's stored text."""
    assert citations
    assert {int(n) for n in re.findall(r"\[(\d+)\]", text)} == {c["index"] for c in citations}
    for c in citations:
        document = client.get(f"/collections/{collection}/documents/{c['document_id']}").json()["text"]
        assert document[c["start_char"]:c["end_char"]] == c["quote"]
