"""Embedders by kind: `local` (all-MiniLM-L6-v2 on onnxruntime, the default), `local-int8` (the same
model with int8 weights: faster, its own vectors) and `openai`.

A kind maps to a factory; `rag.service.Service` calls it once and owns the embedder it returns, so
two services with different settings never share one. Tests register extra kinds (a deterministic
fake) with `register_embedder`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rag.config import Settings
from rag.embeddings.base import Embedder, EmbedderSpec, TooLong
from rag.errors import ConfigError

if TYPE_CHECKING:
    import openai

__all__ = ["Embedder", "EmbedderFactory", "EmbedderSpec", "TooLong", "embedder_kinds", "make_embedder",
           "register_embedder"]

EmbedderFactory = Callable[[Settings, Callable[[], "openai.OpenAI"]], Embedder]
"""Builds an embedder from the settings and a provider of the service's OpenAI client (called only
by kinds that talk to an upstream, so a missing key fails only when such a kind is used)."""


def _local(settings: Settings, client: Callable[[], openai.OpenAI]) -> Embedder:
    from rag.embeddings.local import LocalEmbedder

    return LocalEmbedder.shared(settings.model_cache_dir)


def _local_int8(settings: Settings, client: Callable[[], openai.OpenAI]) -> Embedder:
    from rag.embeddings.local import LocalInt8Embedder

    return LocalInt8Embedder.shared(settings.model_cache_dir)


def _openai(settings: Settings, client: Callable[[], openai.OpenAI]) -> Embedder:
    from rag.embeddings.openai import OpenAIEmbedder

    return OpenAIEmbedder.from_settings(settings, client=client())


_KINDS: dict[str, EmbedderFactory] = {"local": _local, "local-int8": _local_int8, "openai": _openai}


def register_embedder(kind: str, factory: EmbedderFactory) -> None:
    """Make `kind` available to collections (used by tests for a deterministic fake)."""
    _KINDS[kind] = factory


def embedder_kinds() -> tuple[str, ...]:
    return tuple(_KINDS)


def make_embedder(kind: str, settings: Settings, client: Callable[[], openai.OpenAI]) -> Embedder:
    """A new embedder of that kind (the local model's immutable weights are shared by all)."""
    factory = _KINDS.get(kind)
    if factory is None:
        raise ConfigError(f"unknown embedder {kind!r}; choose {' or '.join(_KINDS)}")
    return factory(settings, client)
