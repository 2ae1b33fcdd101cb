"""Offline tokenization: exact ids with no network, chat accounting and context windows."""

import hashlib
from pathlib import Path

import pytest
import tiktoken

from rag import tokens
from rag.config import Settings
from rag.errors import ConfigError
from rag.tokens import context_window, count_chat_tokens, count_tokens, encoding_for_model, get_encoding


def test_exact_ids_in_process_with_sockets_blocked():
    # conftest's guard is active: any download attempt would raise NetworkAccessAttempted.
    assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert encoding_for_model("gpt-4o").name == "o200k_base"


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_encodings_equal_tiktokens_own(name: str, monkeypatch: pytest.MonkeyPatch):
    """Same ranks, split pattern and special tokens as tiktoken's constructor, which reads our
    shipped file here because it sits under the cache name of OpenAI's download URL."""
    from tiktoken_ext.openai_public import ENCODING_CONSTRUCTORS

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tokens.VOCAB_DIR))
    spec = ENCODING_CONSTRUCTORS[name]()
    theirs = tiktoken.Encoding(**spec)
    ours = get_encoding(name)
    assert ours.name == theirs.name == name
    assert ours._pat_str == theirs._pat_str
    assert ours._special_tokens == theirs._special_tokens
    assert ours._mergeable_ranks == theirs._mergeable_ranks
    sample = "Hello, wörld! It's 2026:\r\n  naïve  CAFÉ 12345 <|endoftext|> \U0001f600 don't"
    assert ours.encode(sample, allowed_special="all") == theirs.encode(sample, allowed_special="all")
    assert ours.encode(sample, disallowed_special=()) == theirs.encode(sample, disallowed_special=())


def test_a_damaged_vocabulary_is_refused(tmp_path: Path):
    good = tokens.VOCAB_DIR / tokens._VOCABULARIES["cl100k_base"].file
    damaged = tmp_path / "ranks"
    damaged.write_bytes(good.read_bytes()[:-10])
    expected = hashlib.sha256(good.read_bytes()).hexdigest()
    assert len(tokens._read_ranks(good, expected)) == 100_256
    with pytest.raises(RuntimeError, match="damaged tiktoken vocabulary"):
        tokens._read_ranks(damaged, expected)


def test_unknown_models_fall_back_to_o200k_and_the_configured_window():
    assert encoding_for_model("gpt-5.4-mini").name == "o200k_base"
    assert encoding_for_model("some-local-llm").name == "o200k_base"
    assert encoding_for_model("gpt-4").name == "cl100k_base"
    assert context_window("gpt-4o") == 128_000
    assert context_window("some-local-llm") == 8_192
    assert context_window("some-local-llm", configured=32_000) == 32_000
    with pytest.raises(ValueError):
        get_encoding("r50k_base")


def test_counting_text_and_chat_messages():
    assert count_tokens("hello world") == 2
    assert count_tokens("<|endoftext|>") > 1  # special-token text is ordinary text, never refused
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hello world"}]
    enc = encoding_for_model("gpt-4o")
    body = sum(len(enc.encode(m["role"])) + len(enc.encode(m["content"])) for m in messages)
    assert count_chat_tokens(messages, "gpt-4o") == 3 + 3 * len(messages) + body
    named = [{"role": "user", "name": "ada", "content": "hi"}]
    assert count_chat_tokens(named, "gpt-4o") == 3 + 3 + len(enc.encode("user")) + len(enc.encode("ada")) + 1 + len(enc.encode("hi"))


def test_settings_are_read_from_the_environment_with_clear_errors():
    s = Settings.from_env({"RAG_HOME": "/tmp/x", "RAG_API_KEYS": "a, b,", "RAG_MAX_UPLOAD_MB": "5",
                           "OPENAI_API_KEY": "sk-secret-123"})
    assert str(s.home) == "/tmp/x" and s.api_keys == ("a", "b") and s.max_upload_mb == 5 and s.openai_enabled
    assert s.embedder == "local" and s.chat_model == "gpt-5.4-mini"
    assert "sk-secret-123" not in repr(s) and "a, b" not in repr(s)  # secrets stay out of logs
    with pytest.raises(ConfigError, match="RAG_EMBEDDER"):
        Settings.from_env({"RAG_EMBEDDER": "magic"})
    with pytest.raises(ConfigError, match="RAG_MAX_UPLOAD_MB"):
        Settings.from_env({"RAG_MAX_UPLOAD_MB": "lots"})
    with pytest.raises(ConfigError, match="RAG_OPENAI_TIMEOUT_S"):
        Settings.from_env({"RAG_OPENAI_TIMEOUT_S": "-1"})
