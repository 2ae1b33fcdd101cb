"""Request bodies. Litestar validates them against these types and answers 400 naming the field."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

K = Annotated[int, Meta(ge=1, le=100, description="How many results, 1-100.")]
Mode = Annotated[str, Meta(description="dense, lexical or hybrid (default).")]
Filter = Annotated[dict[str, Any] | None, Meta(description="Metadata filter: {key: value or [values]}, keys ANDed.")]


class CollectionCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]
    embedder: Annotated[str | None, Meta(description="local (default), local-int8 or openai")] = None
    chunk_size: Annotated[int, Meta(ge=16, le=8191)] | None = None
    chunk_overlap: Annotated[int, Meta(ge=0, le=8190)] | None = None


class DocumentIn(Struct, kw_only=True, forbid_unknown_fields=True):
    text: Annotated[str, Meta(min_length=1)]
    title: str | None = None
    source: Annotated[str | None, Meta(description="Identifies the document; the same source replaces it.")] = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class DocumentsIn(Struct, kw_only=True, forbid_unknown_fields=True):
    documents: Annotated[list[DocumentIn], Meta(min_length=1, description=(
        "At most RAG_MAX_BODY_DOCUMENTS (default 1000)."))]


class SearchIn(Struct, kw_only=True, forbid_unknown_fields=True):
    query: Annotated[str, Meta(min_length=1)]
    k: K = 10
    mode: Mode = "hybrid"
    filter: Filter = None
    min_score: Annotated[float | None, Meta(description=(
        "Drop hits below this absolute score: the cosine (`dense_score`) in dense and hybrid modes, BM25 "
        "(`lexical_score`) in lexical mode; never the per-query scaled hybrid `score`."))] = None


Messages = Annotated[list[dict[str, Any]], Meta(min_length=1, description=(
    "A conversation in OpenAI's chat shape ({role, content}, content a string or text parts): the last user "
    "message is answered, read with the turns before it."))]


class AskIn(Struct, kw_only=True, forbid_unknown_fields=True):
    question: Annotated[str, Meta(min_length=1, description="The question; or give `messages`.")] | None = None
    messages: Messages | None = None
    k: Annotated[K | None, Meta(description="Passages to answer from; default 5 for a chat model, 8 for the offline "
                                            "answerer (which quotes only what answers).")] = None
    mode: Mode = "hybrid"
    filter: Filter = None
    model: Annotated[str | None, Meta(description="extractive, or a chat model when a key is set")] = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Meta(ge=1, le=128_000)] | None = None
    stream: bool = False
    min_score: Annotated[float | None, Meta(description="Answer only from passages scoring at least this, as "
                                                        "search's min_score counts it.")] = None


class SimilarityIn(Struct, kw_only=True, forbid_unknown_fields=True):
    a: str | None = None
    b: str | None = None
    pairs: Annotated[list[tuple[str, str]], Meta(max_length=10_000)] | None = None
