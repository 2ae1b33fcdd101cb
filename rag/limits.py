"""Limits on what one request may ask of the service, each a setting, each refused by name.

A 1 MB query took 2-12 s and 200 MB; a filter of 1,000 keys made SQLite refuse the statement with
a 500. Every input that costs work in proportion to its size is bounded here, before any index,
embedder or statement sees it, with a message naming the limit and the setting that raises it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.config import Settings
from rag.errors import LimitExceeded, PayloadTooLarge

__all__ = ["InputLimits"]


@dataclass(frozen=True)
class InputLimits:
    """The limits of `Settings` that `rag` enforces itself (the API adds its own on bodies)."""

    query_chars: int = 4000
    query_tokens: int = 1000
    query_terms: int = 100
    filter_keys: int = 32
    filter_values: int = 256
    document_tokens: int = 2_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> InputLimits:
        return cls(query_chars=settings.max_query_chars, query_tokens=settings.max_query_tokens,
                   query_terms=settings.max_query_terms, filter_keys=settings.max_filter_keys,
                   filter_values=settings.max_filter_values, document_tokens=settings.max_document_tokens)

    def check_query(self, text: object, param: str) -> None:
        """A query or question: characters first (free), then tokens, then distinct lexical terms."""
        if not isinstance(text, str):
            return  # the search itself says what a query must be
        if len(text) > self.query_chars:
            raise LimitExceeded(f"{param} has {len(text):,} characters; the limit is {self.query_chars:,} "
                                "(RAG_MAX_QUERY_CHARS)", param=param)
        from rag.tokens import count_tokens

        tokens = count_tokens(text)
        if tokens > self.query_tokens:
            raise LimitExceeded(f"{param} has {tokens:,} tokens; the limit is {self.query_tokens:,} "
                                "(RAG_MAX_QUERY_TOKENS)", param=param)
        from rag.indexes.analysis import query_terms

        terms = len(query_terms(text))
        if terms > self.query_terms:
            raise LimitExceeded(f"{param} has {terms:,} distinct search terms; the limit is {self.query_terms:,} "
                                "(RAG_MAX_QUERY_TERMS)", param=param)

    def check_filter(self, filter_: object) -> None:
        """A metadata filter's size (its shape is checked by `rag.filters`)."""
        if not isinstance(filter_, dict):
            return
        if len(filter_) > self.filter_keys:
            raise LimitExceeded(f"filter has {len(filter_):,} keys; the limit is {self.filter_keys:,} "
                                "(RAG_MAX_FILTER_KEYS)", param="filter")
        values = sum(len(v) if isinstance(v, list) else 1 for v in filter_.values())
        if values > self.filter_values:
            raise LimitExceeded(f"filter has {values:,} values; the limit is {self.filter_values:,} "
                                "(RAG_MAX_FILTER_VALUES)", param="filter")

    def check_document(self, name: str, text: str) -> None:
        """A document's length in tokens (counted only when its characters could exceed it: a
        token is at least one character)."""
        if len(text) <= self.document_tokens:
            return
        from rag.tokens import count_tokens

        tokens = count_tokens(text)
        if tokens > self.document_tokens:
            raise PayloadTooLarge(f"{name}: {tokens:,} tokens; the limit is {self.document_tokens:,} per document "
                                  "(RAG_MAX_DOCUMENT_TOKENS)", param="documents")
