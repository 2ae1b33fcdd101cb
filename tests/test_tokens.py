"""Offline tokenization: exact ids with no network, chat accounting and context windows."""

import subprocess
import sys

import pytest
import tiktoken

from rag.config import Settings
from rag.errors import ConfigError
from rag.tokens import context_window, count_chat_tokens, count_tokens, encoding_for_model, get_encoding


def test_exact_ids_in_process_with_sockets_blocked():
    # conftest's guard is active: any download attempt would raise NetworkAccessAttempted.
    assert tiktoken.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert tiktoken.get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert tiktoken.encoding_for_model("gpt-4o").name == "o200k_base"
    assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_exact_ids_in_a_fresh_process_without_any_network():
    """A new interpreter with every socket refused and no tiktoken cache of its own."""
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network disabled for this test')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "import rag.tokens, tiktoken\n"
        "print(tiktoken.get_encoding('cl100k_base').encode('hello world'),"
        " tiktoken.get_encoding('o200k_base').encode('hello world'),"
        " tiktoken.encoding_for_model('gpt-4o').name)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}  # no TIKTOKEN_CACHE_DIR inherited
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[15339, 1917] [24912, 2375] o200k_base"


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
