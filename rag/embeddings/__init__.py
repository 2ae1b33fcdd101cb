"""Embedders: `local` (all-MiniLM-L6-v2 on onnxruntime, the default) and `openai`."""

from __future__ import annotations

from rag.config import Settings
from rag.embeddings.base import Embedder, EmbedderSpec, TooLong
from rag.errors import ConfigError

__all__ = ["Embedder", "EmbedderSpec", "TooLong", "get_embedder"]

_cache: dict[tuple, Embedder] = {}


def get_embedder(kind: str, settings: Settings) -> Embedder:
    """The process's embedder of that kind (built once: the local model takes a moment to load)."""
    if kind == "local":
        key: tuple = ("local",)  # one model per process; the cache folder only matters when building
    elif kind == "openai":
        key = ("openai", settings.openai_embedding_model, settings.openai_embedding_dimensions,
               settings.openai_base_url, settings.openai_api_key)
    else:
        raise ConfigError(f"unknown embedder {kind!r}; choose local or openai")
    if key not in _cache:
        if kind == "local":
            from rag.embeddings.local import LocalEmbedder

            _cache[key] = LocalEmbedder(cache_dir=settings.model_cache_dir)
        else:
            from rag.embeddings.openai import OpenAIEmbedder

            _cache[key] = OpenAIEmbedder.from_settings(settings)
    return _cache[key]
