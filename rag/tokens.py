"""Offline token counting with OpenAI's tokenizers.

tiktoken downloads its vocabularies on first use, which cannot happen here. The project ships
cl100k_base and o200k_base in `data/tiktoken/` (see its README), and this module builds each
`tiktoken.Encoding` straight from those files with the split pattern and special tokens of
tiktoken's own constructors. Nothing is downloaded, no environment variable is read or set, and
tiktoken's download cache is never written. Call `get_encoding` / `encoding_for_model` from this
module: plain `tiktoken.get_encoding` would still try the network.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tiktoken

__all__ = [
    "DEFAULT_ENCODING",
    "FALLBACK_ENCODING",
    "context_window",
    "count_chat_tokens",
    "count_tokens",
    "encoding_for_model",
    "get_encoding",
]

VOCAB_DIR = Path(__file__).parent / "data" / "tiktoken"

DEFAULT_ENCODING = "cl100k_base"  # what chunk sizes are measured in; OpenAI's embedders use it
FALLBACK_ENCODING = "o200k_base"  # for chat models tiktoken does not know: current models use it

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True)
class _Vocabulary:
    """What it takes to build one encoding: its shipped ranks file and its tokenizer rules."""

    file: str
    """File name in VOCAB_DIR (tiktoken's cache name for the download: the sha1 of its URL)."""
    sha256: str
    """Digest of the file as OpenAI publishes it; tiktoken checks downloads against the same."""
    pat_str: str
    """The regular expression that splits text into pieces before byte-pair merging."""
    special_tokens: Mapping[str, int]


# Must equal tiktoken_ext.openai_public's constructors; tests/test_tokens.py compares them.
_VOCABULARIES: dict[str, _Vocabulary] = {
    "cl100k_base": _Vocabulary(
        file="9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=(
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
            r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
        ),
        special_tokens={
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": _Vocabulary(
        file="fb374d419588a4632f3f557e76b4b70aebbca790",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
                r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
                r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
}
_SHIPPED = frozenset(_VOCABULARIES)

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


_built: dict[str, tiktoken.Encoding] = {}
_building = threading.Lock()  # reading 100k-200k ranks takes a moment: build each once


def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The named encoding, built from the shipped vocabulary on first use (cached per process)."""
    if name not in _SHIPPED:
        raise ValueError(f"encoding {name!r} is not shipped; available: {', '.join(sorted(_SHIPPED))}")
    encoding = _built.get(name)
    if encoding is None:
        with _building:
            encoding = _built.get(name)
            if encoding is None:
                encoding = _built[name] = _build_encoding(name, _VOCABULARIES[name])
    return encoding


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The encoding a model uses; a model tiktoken does not know gets o200k_base."""
    try:
        name = tiktoken.encoding_name_for_model(model)  # a table lookup, no download
    except KeyError:
        name = FALLBACK_ENCODING
    return get_encoding(name if name in _SHIPPED else FALLBACK_ENCODING)


def _build_encoding(name: str, vocabulary: _Vocabulary) -> tiktoken.Encoding:
    return tiktoken.Encoding(
        name,
        pat_str=vocabulary.pat_str,
        mergeable_ranks=_read_ranks(VOCAB_DIR / vocabulary.file, vocabulary.sha256),
        special_tokens=dict(vocabulary.special_tokens),
    )


def _read_ranks(path: Path, sha256: str) -> dict[bytes, int]:
    """A `.tiktoken` file's token -> rank table: one "<base64 token> <rank>" per line.

    Read here rather than with `tiktoken.load.load_tiktoken_bpe`, which copies every file it reads
    into tiktoken's download cache (TIKTOKEN_CACHE_DIR or the temp folder) and fails when a
    cache folder the user chose is read-only.
    """
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"{path}: damaged tiktoken vocabulary (sha256 differs from {sha256})")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


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
