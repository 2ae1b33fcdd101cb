"""Offline token counting with OpenAI's tokenizers.

tiktoken downloads its vocabularies on first use, which cannot happen here. The project ships
cl100k_base and o200k_base under the cache names tiktoken looks for (see data/tiktoken/README.md),
and importing this module points `TIKTOKEN_CACHE_DIR` at them, so plain `tiktoken.get_encoding`
and `tiktoken.encoding_for_model` work with no network anywhere in the process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

VOCAB_DIR = Path(__file__).parent / "data" / "tiktoken"
_CACHE_NAMES = {
    "cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
    "o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790",
}


def _point_tiktoken_at_shipped_vocabularies() -> None:
    # Respect a cache folder the user chose only if it already holds both vocabularies; otherwise
    # tiktoken would try to download into it.
    chosen = os.environ.get("TIKTOKEN_CACHE_DIR")
    if chosen and all((Path(chosen) / name).is_file() for name in _CACHE_NAMES.values()):
        return
    os.environ["TIKTOKEN_CACHE_DIR"] = str(VOCAB_DIR)


_point_tiktoken_at_shipped_vocabularies()

import tiktoken  # noqa: E402  (must follow the cache set-up above)

__all__ = [
    "DEFAULT_ENCODING",
    "FALLBACK_ENCODING",
    "context_window",
    "count_chat_tokens",
    "count_tokens",
    "encoding_for_model",
    "get_encoding",
]

DEFAULT_ENCODING = "cl100k_base"  # what chunk sizes are measured in; OpenAI's embedders use it
FALLBACK_ENCODING = "o200k_base"  # for chat models tiktoken does not know: current models use it
_SHIPPED = frozenset(_CACHE_NAMES)

# Context windows (input + output tokens) of chat model families, longest prefix first. Published
# by OpenAI on its model pages; a model not listed needs RAG_CHAT_CONTEXT_TOKENS.
_CONTEXT_WINDOWS: tuple[tuple[str, int], ...] = (
    ("gpt-5", 400_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-4o", 128_000),
    ("chatgpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4-32k", 32_768),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo", 16_385),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4-mini", 200_000),
)
DEFAULT_CONTEXT_TOKENS = 8_192  # a safe floor for an unknown model when nothing is configured


@cache
def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The named encoding, loaded from the shipped vocabularies (cached per process)."""
    if name not in _SHIPPED:
        raise ValueError(f"encoding {name!r} is not shipped; available: {', '.join(sorted(_SHIPPED))}")
    return tiktoken.get_encoding(name)


@cache
def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The encoding a model uses; a model tiktoken does not know gets o200k_base."""
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        name = FALLBACK_ENCODING
    return get_encoding(name if name in _SHIPPED else FALLBACK_ENCODING)


def count_tokens(text: str, encoding: str = DEFAULT_ENCODING) -> int:
    """Tokens in `text`; special-token strings are counted as ordinary text, never refused."""
    return len(get_encoding(encoding).encode(text, disallowed_special=()))


def count_chat_tokens(messages: Iterable[Mapping[str, object]], model: str) -> int:
    """Prompt tokens of a chat request, by OpenAI's published accounting for its chat format:
    3 tokens of framing per message, 1 more for a `name`, and 3 priming the reply."""
    enc = encoding_for_model(model)
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            if isinstance(value, str):
                total += len(enc.encode(value, disallowed_special=()))
                if key == "name":
                    total += 1
    return total


def context_window(model: str, configured: int | None = None) -> int:
    """Tokens a chat model can hold; `configured` (RAG_CHAT_CONTEXT_TOKENS) wins when given."""
    if configured:
        return configured
    name = model.split(":", 2)[1] if model.startswith("ft:") else model
    for prefix, size in _CONTEXT_WINDOWS:
        if name.startswith(prefix):
            return size
    return DEFAULT_CONTEXT_TOKENS
