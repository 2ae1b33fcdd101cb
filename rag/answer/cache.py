"""Answers kept in the store, so the same question asked again of an unchanged collection is replayed.

Only answers that would come out the same are kept: the extractive answerer's, and a chat model's
when the caller asked for temperature 0. The key hashes everything that shapes an answer: the
collection's change number (any write to the collection changes it), the answerer and its prompt
version, the model, the upstream's base URL, the conversation with white space folded, k, mode,
filter, min_score and max_tokens. Writing an entry deletes the collection's entries of older change
numbers, and the least recently used entries go once there are more than the cap
(RAG_ANSWER_CACHE_ENTRIES). A replay yields the answer's own events, so a streamed replay sends the
same server-sent events; its usage says `cached: true` and costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, func, select, update

from rag.answer.conversation import Message
from rag.answer.types import AnswerCitations, AnswerDelta, AnswerDone, AnswerEvent, Citation
from rag.records import Collection
from rag.schema import AnswerCacheRow
from rag.store import Store

__all__ = ["AnswerCache", "cache_key"]


def cache_key(*, collection: Collection, change_number: int, answerer: str, prompt_version: str, model: str,
              base_url: str | None, messages: Sequence[Message], k: int, mode: str, filter: Any,
              min_score: float | None, max_tokens: int | None) -> str:
    """SHA-256 (hex) of everything that shapes an answer."""
    shaped = {"collection": collection.id, "change_number": change_number, "answerer": answerer,
              "prompt_version": prompt_version, "model": model, "base_url": base_url or "",
              "messages": list(messages), "k": k, "mode": mode, "filter": filter, "min_score": min_score,
              "max_tokens": max_tokens}
    encoded = json.dumps(shaped, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _to_json(events: Sequence[AnswerEvent]) -> str:
    out: list[dict[str, Any]] = []
    for e in events:
        if isinstance(e, AnswerDelta):
            out.append({"type": "delta", "text": e.text})
        elif isinstance(e, AnswerCitations):
            out.append({"type": "citations", "citations": [asdict(c) for c in e.citations]})
        elif isinstance(e, AnswerDone):
            out.append({"type": "done", "model": e.model, "usage": e.usage})
    return json.dumps(out, ensure_ascii=False)


def _from_json(text: str) -> list[AnswerEvent]:
    events: list[AnswerEvent] = []
    for e in json.loads(text):
        if e["type"] == "delta":
            events.append(AnswerDelta(e["text"]))
        elif e["type"] == "citations":
            events.append(AnswerCitations([Citation(**c) for c in e["citations"]]))
        elif e["type"] == "done":
            events.append(AnswerDone(e["model"], e["usage"]))
    return events


class AnswerCache:
    """The `answer_cache` table, capped at `entries` answers (0: keep none)."""

    def __init__(self, store: Store, entries: int):
        self._store = store
        self.entries = entries

    def change_number(self, collection: Collection) -> int:
        """The collection's change number now (the record in hand may be older)."""
        return self._store.change_number(collection.id)

    def get(self, key: str) -> list[AnswerEvent] | None:
        """The events of a kept answer, marked as replayed (`usage.cached`, no cost); None if not kept."""
        if self.entries <= 0:
            return None
        with self._store.write() as s:
            events = s.execute(select(AnswerCacheRow.events).where(AnswerCacheRow.key == key)).scalar_one_or_none()
            if events is None:
                return None
            s.execute(update(AnswerCacheRow).where(AnswerCacheRow.key == key).values(used_at=time.time()))
        replay = _from_json(events)
        done = replay[-1]
        if isinstance(done, AnswerDone):
            replay[-1] = AnswerDone(done.model, {**done.usage, "cached": True, "cost_usd": 0.0})
        return replay

    def put(self, key: str, collection: Collection, change_number: int, events: Sequence[AnswerEvent]) -> None:
        """Keep a complete answer; drop the collection's stale entries and the least recently used
        beyond the cap."""
        if self.entries <= 0:
            return
        now = time.time()
        with self._store.write() as s:
            s.execute(delete(AnswerCacheRow).where(AnswerCacheRow.collection_id == collection.id,
                                                   AnswerCacheRow.change_number < change_number))
            s.merge(AnswerCacheRow(key=key, collection_id=collection.id, change_number=change_number,
                                   events=_to_json(events), created_at=now, used_at=now))
            s.flush()
            extra = s.execute(select(func.count()).select_from(AnswerCacheRow)).scalar_one() - self.entries
            if extra > 0:
                oldest = select(AnswerCacheRow.key).order_by(AnswerCacheRow.used_at).limit(extra)
                s.execute(delete(AnswerCacheRow).where(AnswerCacheRow.key.in_(oldest)))

    def keep(self, key: str, collection: Collection, change_number: int,
             events: Iterator[AnswerEvent]) -> Iterator[AnswerEvent]:
        """Pass `events` on, and keep the answer once it is complete (a failed or abandoned one is not)."""
        seen: list[AnswerEvent] = []
        for event in events:
            seen.append(event)
            yield event
        if seen and isinstance(seen[-1], AnswerDone):
            self.put(key, collection, change_number, seen)
