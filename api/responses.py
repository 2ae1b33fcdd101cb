"""What the API answers: one msgspec Struct per wire shape, so the OpenAPI document is the contract.

Litestar derives each route's response schema from these types. A field's `Meta(description=...)`
is its docstring: unlike a string under the field, it reaches the OpenAPI document. The service's
own records (collections, documents, hits, answers, citations) become wire shapes here, each in one
`from_*` constructor, so a change of a record shows up in one place. Error bodies are
`api.errors.ErrorBody`.

Conversions read the records' attributes (`msgspec.convert(..., from_attributes=True)` where the
names match). A retrieval `Hit` is typed `Any` here: its module lies behind the `Service` façade,
which `api/` does not import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from rag.answer import AnswerCitations, AnswerDelta, AnswerDone, AnswerEvent, AnswerFailed

if TYPE_CHECKING:
    from ingest.queue import Accepted
    from rag.answer import Answer, Citation
    from rag.records import Collection, Document
    from rag.service import Health as ServiceHealth

__all__ = [
    "AnswerOut", "AskDelta", "AskDone", "AskError", "ChatChoice", "ChatCompletion", "ChatCompletionChunk",
    "ChatMessage", "ChatStreamError", "ChatStreamErrorDetail", "ChunkChoice", "ChunkDelta", "CitationOut",
    "CollectionList", "CollectionOut", "ContextUsage", "DocumentAccepted", "DocumentList", "DocumentOut",
    "DocumentStatus", "DocumentWithText", "DocumentsAccepted", "DocumentsDeleted", "EmbedderOut", "Embedding",
    "EmbeddingList", "EmbeddingUsage", "Health", "HitOut", "Model", "ModelList", "RewriteUsage", "SearchResults",
    "SimilarityScore", "SimilarityScores", "Usage", "event_payload",
]

DocumentStatus = Annotated[
    Literal["queued", "processing", "ready", "failed"],
    Meta(description="queued for the ingest worker, processing, ready (searchable) or failed (see `error`)."),
]


class Health(Struct, kw_only=True):
    """`GET /health`: the store answered, and how much is loaded."""

    status: Literal["ok"] = "ok"
    store: Annotated[Literal["ok"], Meta(description="The database answered.")] = "ok"
    indexes_loaded: Annotated[int, Meta(description="Collection indexes held in memory.")]
    collections: int

    @classmethod
    def from_health(cls, health: ServiceHealth) -> Health:
        return cls(indexes_loaded=health.indexes_loaded, collections=health.collections)


# -- collections ----------------------------------------------------------------------------------

class EmbedderOut(Struct, kw_only=True):
    """The embedder a collection is bound to: its vectors come from this model only."""

    kind: Annotated[str, Meta(description="`local`, `local-int8` or `openai`.")]
    model: str
    dim: Annotated[int, Meta(description="Dimensions of each vector.")]


class CollectionOut(Struct, kw_only=True):
    name: str
    embedder: EmbedderOut
    chunk_size: Annotated[int, Meta(description="Tokens per chunk.")]
    chunk_overlap: Annotated[int, Meta(description="Tokens shared by neighbouring chunks.")]
    documents: Annotated[int, Meta(description="Documents in the collection (0 where not counted).")]
    chunks: Annotated[int, Meta(description="Chunks in the collection (0 where not counted).")]
    created_at: Annotated[str, Meta(description="ISO 8601 time, UTC.")]

    @classmethod
    def from_collection(cls, c: Collection) -> CollectionOut:
        """From a `Collection` record (the embedder's `model_id` is sent as `model`)."""
        embedder = EmbedderOut(kind=c.embedder.kind, model=c.embedder.model_id, dim=c.embedder.dim)
        return cls(name=c.name, embedder=embedder, chunk_size=c.chunk_size, chunk_overlap=c.chunk_overlap,
                   documents=c.documents, chunks=c.chunks, created_at=c.created_at)


class CollectionList(Struct, kw_only=True):
    data: Annotated[list[CollectionOut], Meta(description="Collections in name order.")]
    has_more: Annotated[bool, Meta(description="More follow: ask again with `after` = the last name.")]


# -- documents ------------------------------------------------------------------------------------

class DocumentOut(Struct, kw_only=True):
    id: int
    source: Annotated[str, Meta(description="Identifies the document; a new upload of the same source replaces it.")]
    title: str | None
    status: DocumentStatus
    error: Annotated[str | None, Meta(description="Why ingestion failed (status `failed`), else null.")]
    metadata: Annotated[dict[str, Any], Meta(description="The document's metadata, as given or extracted.")]
    chunks: int
    content_hash: Annotated[str, Meta(description="SHA-256 of the content; an unchanged upload is skipped. Empty "
                                      "when the stored version is not known to match any upload (its re-upload "
                                      "failed, or part of its text is in no chunk: see `error`).")]
    created_at: str
    updated_at: str

    @classmethod
    def from_document(cls, d: Document) -> DocumentOut:
        """From a `Document` record, without its text."""
        return msgspec.convert(d, cls, from_attributes=True)


class DocumentWithText(DocumentOut, kw_only=True):
    text: Annotated[str, Meta(description="The extracted text that chunks and citations index into.")]

    @classmethod
    def from_document(cls, d: Document) -> DocumentWithText:
        """From a `Document` record loaded with its text."""
        return msgspec.convert(d, cls, from_attributes=True)


class DocumentList(Struct, kw_only=True):
    data: Annotated[list[DocumentOut], Meta(description="Documents in id order.")]
    has_more: Annotated[bool, Meta(description="More follow: ask again with `after` = the last id.")]


class DocumentAccepted(Struct, kw_only=True):
    """A document of an upload: queued, or already ready (unchanged); with ?wait=true, ready or failed."""

    id: int
    source: str
    status: DocumentStatus
    change: Annotated[Literal["created", "updated", "unchanged"], Meta(description=(
        "`created`: a new source; `updated`: new content for a stored source (it replaces that document); "
        "`unchanged`: the same content as stored, nothing done."))]
    error: str | None

    @classmethod
    def from_accepted(cls, a: Accepted) -> DocumentAccepted:
        return msgspec.convert(a, cls, from_attributes=True)


class DocumentsAccepted(Struct, kw_only=True):
    data: list[DocumentAccepted]


class DocumentsDeleted(Struct, kw_only=True):
    """`DELETE /collections/{name}/documents?source=...` or `?source_prefix=...`."""

    deleted: Annotated[list[int], Meta(description="Ids of the documents deleted (empty when none matched).")]
    chunks: Annotated[int, Meta(description="Chunks removed with them.")]

    @classmethod
    def from_deleted(cls, d: Any) -> DocumentsDeleted:
        """From the service's `DeletedDocuments`."""
        return cls(deleted=list(d.document_ids), chunks=d.chunks)


# -- search, answers, similarity ------------------------------------------------------------------

class HitOut(Struct, kw_only=True):
    """One retrieved chunk."""

    chunk_id: int
    document_id: int
    score: Annotated[float, Meta(description=(
        "The rank score. dense: cosine similarity; lexical: BM25; hybrid: weighted sum of both, each min-max "
        "scaled to [0, 1] over this query's lists, so the best hit of any query scores about 1: threshold "
        "`dense_score` instead (what `min_score` reads).")
    )]
    text: str
    source: str
    title: str | None
    page: Annotated[int | None, Meta(description="Page number, for paged formats (PDF).")]
    section: Annotated[str | None, Meta(description="The heading the chunk sits under, when known.")]
    start_char: int
    end_char: Annotated[int, Meta(description="Span of `text` in the document's extracted text.")]
    metadata: dict[str, Any]
    dense_score: Annotated[float | None, Meta(description=(
        "Cosine similarity of the query and the chunk, in [-1, 1]: absolute, so comparable across queries. Set "
        "for every hit in dense and hybrid modes (also for a hybrid hit only the lexical list found); null in "
        "lexical mode."))]
    lexical_score: Annotated[float | None, Meta(description=(
        "BM25 score of the chunk for the query's words (0 when it holds none of them). Set for every hit in "
        "lexical and hybrid modes; null in dense mode."))]

    @classmethod
    def from_hit(cls, h: Any) -> HitOut:
        """From a retrieval `Hit` (typed `Any`: its module lies behind the `Service` façade)."""
        return msgspec.convert(h, cls, from_attributes=True)


class SearchResults(Struct, kw_only=True):
    hits: Annotated[list[HitOut], Meta(description="Best first.")]


class CitationOut(Struct, kw_only=True):
    """A passage the answer cites as [index], with the exact text it quotes."""

    index: Annotated[int, Meta(description=(
        "The number the answer cites this passage by, [index]: 1..n in the order first cited in the answer."))]
    document_id: int
    chunk_id: int
    source: str
    title: str | None
    page: int | None
    start_char: int
    end_char: Annotated[int, Meta(description=(
        "Span of `quote` in the document's text: text[start_char:end_char] == quote."))]
    quote: str
    score: Annotated[float, Meta(description="The retrieval score of the cited passage.")]
    passage: Annotated[int, Meta(description=(
        "The passage's rank in retrieval (1 = best): the number a chat model read it under."))]

    @classmethod
    def from_citation(cls, c: Citation) -> CitationOut:
        return msgspec.convert(c, cls, from_attributes=True)


_NO_USAGE = "Absent when the chat model's upstream reported no usage (then only prompt_tokens is counted)."
_DETAILS = "Token counts by kind, as the chat model reports them."


class RewriteUsage(Struct, kw_only=True):
    """Tokens of the one call that made a follow-up question stand alone (zeros when none was made:
    a first question, or the offline rewrite)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ContextUsage(Struct, kw_only=True):
    """What the answering model was given, and what did not fit its context window."""

    passages_sent: Annotated[int, Meta(description="Retrieved passages the model read.")]
    passages_dropped: Annotated[int, Meta(description=(
        "Retrieved passages left out, lowest-ranked first, because even the question and the passages "
        "did not fit the window with no earlier turns."))]
    turns_sent: Annotated[int, Meta(description="Earlier messages of the conversation the model read.")]
    turns_dropped: Annotated[int, Meta(description="Earlier messages left out to fit the window, oldest first.")]


class Usage(Struct, kw_only=True):
    """Token counts in OpenAI's `usage` shape (cl100k_base for extractive answers), and what else the
    answer took."""

    prompt_tokens: int
    completion_tokens: Annotated[int | UnsetType, Meta(description=_NO_USAGE)] = UNSET
    total_tokens: Annotated[int | UnsetType, Meta(description=_NO_USAGE)] = UNSET
    prompt_tokens_details: Annotated[dict[str, int] | UnsetType, Meta(description=_DETAILS)] = UNSET
    completion_tokens_details: Annotated[dict[str, int] | UnsetType, Meta(description=_DETAILS)] = UNSET
    rewrite: Annotated[RewriteUsage | UnsetType, Meta(description=(
        "The rewrite call's tokens, not included in the counts above."))] = UNSET
    context: ContextUsage | UnsetType = UNSET
    cost_usd: Annotated[float | None | UnsetType, Meta(description=(
        "Estimated price in US dollars of every token above, answer and rewrite, from the service's price "
        "table; null when the model has no cited price (or spent nothing: the extractive answerer costs 0)."))] = UNSET
    cached: Annotated[bool | UnsetType, Meta(description=(
        "The answer was replayed from the answer cache: no model was asked now."))] = UNSET

    @classmethod
    def from_usage(cls, usage: dict[str, Any]) -> Usage:
        """From an answer's usage dict (keys beyond OpenAI's `CompletionUsage` are not sent)."""
        return msgspec.convert(usage, cls)


class AnswerOut(Struct, kw_only=True):
    answer: Annotated[str, Meta(description="The answer, citing passages as [n].")]
    citations: Annotated[list[CitationOut], Meta(description="Only passages the answer cites, by index.")]
    model: Annotated[str, Meta(description="The model that answered (`extractive` offline).")]
    usage: Usage

    @classmethod
    def from_answer(cls, a: Answer) -> AnswerOut:
        return cls(answer=a.answer, citations=[CitationOut.from_citation(c) for c in a.citations], model=a.model,
                   usage=Usage.from_usage(a.usage))


class AskDelta(Struct, kw_only=True):
    """Data of a streamed `delta` event: the next piece of the answer."""

    text: str


class AskDone(Struct, kw_only=True):
    """Data of the streamed `done` event: the last event of a complete answer."""

    model: str
    usage: Usage


class AskError(Struct, kw_only=True):
    """Data of a streamed `error` event: the upstream failed after the stream began (the last event)."""

    message: str
    status: Annotated[int, Meta(description="The HTTP status it would have had before the stream began.")]


def event_payload(event: AnswerEvent) -> AskDelta | list[CitationOut] | AskDone | AskError:
    """The `data` of a streamed answer's event, by its kind (`api.search.ASK_STREAM` documents them)."""
    if isinstance(event, AnswerDelta):
        return AskDelta(text=event.text)
    if isinstance(event, AnswerCitations):
        return [CitationOut.from_citation(c) for c in event.citations]
    if isinstance(event, AnswerDone):
        return AskDone(model=event.model, usage=Usage.from_usage(event.usage))
    if isinstance(event, AnswerFailed):
        return AskError(message=event.message, status=event.status)
    raise TypeError(f"not an answer event: {event!r}")


class SimilarityScore(Struct, kw_only=True):
    score: Annotated[float, Meta(description="Cosine similarity of `a` and `b`, rounded to 6 places.")]


class SimilarityScores(Struct, kw_only=True):
    scores: Annotated[list[float], Meta(description="Cosine similarity of each pair, in order, rounded to 6 places.")]


# -- OpenAI-compatible ----------------------------------------------------------------------------

class Model(Struct, kw_only=True):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Model]


class Embedding(Struct, kw_only=True):
    object: Literal["embedding"] = "embedding"
    index: Annotated[int, Meta(description="Position of the input this vector embeds.")]
    embedding: Annotated[list[float] | str, Meta(description=(
        "The vector; with encoding_format=base64, its float32 little-endian bytes in base64."))]


class EmbeddingUsage(Struct, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ChatMessage(Struct, kw_only=True):
    role: Literal["assistant"] = "assistant"
    content: Annotated[str, Meta(description="The answer, citing passages as [n].")]


class ChatChoice(Struct, kw_only=True):
    index: int
    message: ChatMessage
    finish_reason: Literal["stop"] = "stop"


class ChatCompletion(Struct, kw_only=True):
    """A chat completion answered from a collection: OpenAI's shape plus `citations`."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: Annotated[int, Meta(description="Unix time, seconds.")]
    model: str
    choices: list[ChatChoice]
    usage: Usage
    citations: Annotated[list[CitationOut], Meta(description="The passages the answer cites as [n].")]


class ChunkDelta(Struct, kw_only=True):
    role: Annotated[Literal["assistant"] | UnsetType, Meta(description="On the first chunk only.")] = UNSET
    content: str | UnsetType = UNSET


class ChunkChoice(Struct, kw_only=True):
    index: int
    delta: ChunkDelta
    finish_reason: Annotated[Literal["stop"] | None, Meta(description="`stop` on the last chunk.")] = None


class ChatCompletionChunk(Struct, kw_only=True):
    """One streamed chunk, as OpenAI streams them; the last also carries `citations` and `usage`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    citations: Annotated[list[CitationOut] | UnsetType, Meta(description="On the last chunk.")] = UNSET
    usage: Annotated[Usage | UnsetType, Meta(description="On the last chunk.")] = UNSET


class ChatStreamErrorDetail(Struct, kw_only=True):
    message: str
    type: Literal["upstream_error"] = "upstream_error"
    code: Annotated[int, Meta(description="The HTTP status it would have had before the stream began.")]


class ChatStreamError(Struct, kw_only=True):
    """A chunk in place of the rest when the upstream fails after the stream began."""

    error: ChatStreamErrorDetail
