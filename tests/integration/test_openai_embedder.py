"""The `openai` embedder and client factory, against the OpenAI test server over real HTTP."""

from __future__ import annotations

import time

import numpy as np
import openai
import pytest
from support.net import free_port
from support.openai_server import expected_embedding

from rag.config import Settings
from rag.embeddings.openai import MAX_TOKENS_PER_REQUEST, OpenAIEmbedder
from rag.errors import (
    ConfigError,
    InputTooLong,
    MissingCredentials,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from rag.openai_client import make_client, translate_openai_error
from rag.service import Service
from rag.tokens import count_tokens

KEY = "sk-test-key"


def settings_for(server, **overrides) -> Settings:
    values = {"openai_api_key": KEY, "openai_base_url": server.url, "openai_timeout_s": 10.0}
    return Settings(**(values | overrides))


def embedder_for(server, *, max_retries: int = 2, timeout_s: float | None = None, **settings) -> OpenAIEmbedder:
    s = settings_for(server, **settings)
    return OpenAIEmbedder.from_settings(s, client=make_client(s, max_retries=max_retries, timeout_s=timeout_s))


def sent_inputs(server) -> list[list[str]]:
    return [r.json()["input"] for r in server.requests_to("/v1/embeddings")]


# ---------------------------------------------------------------- vectors


def test_vectors_are_the_servers_unit_norm_float32_in_input_order(openai_server):
    embedder = embedder_for(openai_server)
    texts = ["alpha", "beta", "gamma"]
    vectors = embedder.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 1536)
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    for text, vector in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(vector, expected_embedding(text), rtol=1e-6, atol=1e-7)
    (request,) = openai_server.requests
    assert request.method == "POST" and request.path == "/v1/embeddings"
    assert request.header("authorization") == f"Bearer {KEY}"
    assert request.json() == {"model": "text-embedding-3-small", "input": texts, "encoding_format": "base64"}


def test_order_is_kept_when_the_server_answers_rows_out_of_order(openai_server):
    openai_server.shuffle_embeddings = True
    texts = [f"text {i}" for i in range(5)]
    vectors = embedder_for(openai_server).embed(texts)
    for text, vector in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(vector, expected_embedding(text), rtol=1e-6, atol=1e-7)


def test_dimensions_are_requested_and_honoured(openai_server):
    embedder = embedder_for(openai_server, openai_embedding_model="text-embedding-3-large",
                            openai_embedding_dimensions=256)
    assert embedder.dim == 256 and embedder.spec.model_id == "text-embedding-3-large"
    assert openai_server.requests == []  # known without a call
    vectors = embedder.embed(["shortened"])
    assert vectors.shape == (1, 256)
    assert openai_server.requests[0].json()["dimensions"] == 256
    np.testing.assert_allclose(vectors[0], expected_embedding("shortened", "text-embedding-3-large", 256),
                               rtol=1e-6, atol=1e-7)
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-6)


def test_unknown_model_dimension_is_probed_once_lazily(openai_server):
    embedder = embedder_for(openai_server, openai_embedding_model="local-compatible-model")
    assert openai_server.requests == []
    assert embedder.dim == 384
    assert embedder.dim == 384
    assert sent_inputs(openai_server) == [["dimension probe"]]
    assert embedder.embed(["x"]).shape == (1, 384)


def test_dimensions_the_model_cannot_give_are_refused_up_front(openai_server):
    with pytest.raises(ConfigError, match="at most 1536"):
        embedder_for(openai_server, openai_embedding_dimensions=2000)
    with pytest.raises(ConfigError, match="cannot shorten"):
        embedder_for(openai_server, openai_embedding_model="text-embedding-ada-002",
                     openai_embedding_dimensions=512)


def test_identical_texts_are_sent_once(openai_server):
    vectors = embedder_for(openai_server).embed(["same", "other", "same"])
    assert sent_inputs(openai_server) == [["same", "other"]]
    np.testing.assert_array_equal(vectors[0], vectors[2])


# ---------------------------------------------------------------- batching


def test_more_than_2048_inputs_split_into_two_requests_in_order(openai_server):
    texts = [f"short text number {i}" for i in range(2049)]
    vectors = embedder_for(openai_server, openai_embedding_dimensions=8).embed(texts)
    batches = sent_inputs(openai_server)
    assert [len(b) for b in batches] == [2048, 1]
    assert batches[0] + batches[1] == texts
    for i in (0, 2047, 2048):
        np.testing.assert_allclose(vectors[i], expected_embedding(texts[i], dimensions=8), rtol=1e-6, atol=1e-7)


def test_requests_stay_under_300k_tokens(openai_server):
    # 40 texts of 8,002 tokens each: 320,080 tokens, more than one request may carry.
    texts = [f"doc{i:02d}" + " hello" * 8000 for i in range(40)]
    sizes = [count_tokens(t) for t in texts]
    assert sizes == [8002] * 40
    embedder = embedder_for(openai_server, openai_embedding_dimensions=8)
    vectors = embedder.embed(texts)
    batches = sent_inputs(openai_server)
    assert [len(b) for b in batches] == [37, 3]  # 37 × 8,002 = 296,074 ≤ 300,000 < 38 × 8,002
    assert all(sum(count_tokens(t) for t in b) <= MAX_TOKENS_PER_REQUEST for b in batches)
    assert batches[0] + batches[1] == texts
    np.testing.assert_allclose(vectors[39], expected_embedding(texts[39], dimensions=8), rtol=1e-6, atol=1e-7)


def test_over_long_text_is_refused_naming_it(openai_server):
    embedder = embedder_for(openai_server)
    with pytest.raises(InputTooLong, match=r"text 1 has 9001 tokens; text-embedding-3-small reads at most 8191"):
        embedder.embed(["fine", "x" + " hello" * 9000])
    assert openai_server.requests == []


def test_truncation_sends_the_first_8191_tokens_as_text(openai_server):
    long_text = "start" + " hello" * 9000 + " é" * 10
    vector = embedder_for(openai_server).embed_one(long_text)
    (sent,) = sent_inputs(openai_server)[0]
    assert count_tokens(sent) == 8191
    assert long_text.startswith(sent)
    np.testing.assert_allclose(vector, expected_embedding(sent), rtol=1e-6, atol=1e-7)


def test_count_tokens_uses_cl100k(openai_server):
    assert embedder_for(openai_server).count_tokens(["hello world", "<|endoftext|>"]) == [2, 7]


# ---------------------------------------------------------------- failures


def test_a_429_then_success_is_retried_transparently(openai_server):
    openai_server.fail_next(429, times=1)
    vectors = embedder_for(openai_server).embed(["retry me"])
    assert vectors.shape == (1, 1536)
    assert [r.path for r in openai_server.requests] == ["/v1/embeddings"] * 2
    assert openai_server.requests[0].body == openai_server.requests[1].body


def test_persistent_429_stays_429(openai_server):
    openai_server.fail_next(429, times=10)
    with pytest.raises(UpstreamRateLimited) as caught:
        embedder_for(openai_server, max_retries=1).embed(["x"])
    assert caught.value.status == 429
    assert "Rate limit reached" in str(caught.value)
    assert caught.value.request_id and caught.value.request_id.startswith("req_test")
    assert len(openai_server.requests) == 2


def test_persistent_500_becomes_upstream_unavailable(openai_server):
    openai_server.fail_next(500, times=10)
    with pytest.raises(UpstreamUnavailable) as caught:
        embedder_for(openai_server, max_retries=2).embed(["x"])
    assert caught.value.status == 502
    assert "failed with 500" in str(caught.value) and "error while processing" in str(caught.value)
    assert caught.value.request_id is not None
    assert len(openai_server.requests) == 3  # the first try and two retries


def test_a_slow_upstream_becomes_upstream_timeout(openai_server):
    openai_server.slow_next(3.0)
    embedder = embedder_for(openai_server, max_retries=0, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        embedder.embed(["slow"])
    assert caught.value.status == 504
    assert time.monotonic() - started < 2.0


def test_timeout_comes_from_settings(openai_server):
    openai_server.slow_next(3.0)
    embedder = embedder_for(openai_server, max_retries=0, openai_timeout_s=0.3)
    with pytest.raises(UpstreamTimeout):
        embedder.embed(["slow"])


def test_an_unreachable_upstream_becomes_upstream_unavailable():
    s = Settings(openai_api_key=KEY, openai_base_url=f"http://127.0.0.1:{free_port()}/v1")
    embedder = OpenAIEmbedder.from_settings(s, client=make_client(s, max_retries=0))
    with pytest.raises(UpstreamUnavailable, match="could not reach the OpenAI upstream") as caught:
        embedder.embed(["x"])
    assert caught.value.status == 502


def test_a_rejected_key_is_a_502_naming_the_setting(openai_server):
    openai_server.fail_next(401)
    with pytest.raises(UpstreamError) as caught:
        embedder_for(openai_server).embed(["x"])
    assert type(caught.value) is UpstreamRefused
    assert (caught.value.status, caught.value.code) == (502, "upstream_refused")
    assert caught.value.status == 502
    assert "401" in str(caught.value) and "OPENAI_API_KEY" in str(caught.value)
    assert len(openai_server.requests) == 1  # 401 is not retried


def test_missing_key_fails_at_once_naming_the_variable(openai_server, tmp_path):
    s = Settings(openai_base_url=openai_server.url, home=tmp_path)
    with pytest.raises(MissingCredentials, match="OPENAI_API_KEY"):
        make_client(s)
    with pytest.raises(MissingCredentials, match="OPENAI_API_KEY"):
        OpenAIEmbedder.from_settings(s)
    with pytest.raises(MissingCredentials, match="OPENAI_API_KEY"), Service(s) as service:
        service.embedder("openai")
    assert openai_server.requests == []


def test_the_service_builds_the_openai_embedder_from_settings(openai_server, tmp_path):
    s = settings_for(openai_server, openai_embedding_dimensions=64, home=tmp_path)
    service = Service(s)
    embedder = service.embedder("openai")
    assert embedder is service.embedder("openai")
    assert (embedder.kind, embedder.model_id, embedder.dim) == ("openai", "text-embedding-3-small", 64)
    assert embedder.embed(["via settings"]).shape == (1, 64)


def test_client_is_configured_once_with_explicit_limits(openai_server):
    client = make_client(settings_for(openai_server, openai_timeout_s=12.5), max_retries=3)
    assert client.max_retries == 3
    assert client.timeout.read == 12.5 and client.timeout.connect == 5.0
    assert str(client.base_url).rstrip("/") == openai_server.url


def test_translate_keeps_other_service_errors_and_wraps_the_unknown():
    mine = UpstreamTimeout("already ours")
    assert translate_openai_error(mine) is mine
    other = translate_openai_error(openai.OpenAIError("odd"))
    assert isinstance(other, UpstreamUnavailable) and other.status == 502
