"""One error contract: each error class says how every front end reports it.

The HTTP layer and the CLI read `status`, `type`, `code`, `param` and `exit_code` off the error; these
tests pin the contract on the classes, and check that both front ends honour it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from support.paths import ROOT

from api.app import create_app
from ingest.cli import main
from rag import errors
from rag.config import Settings

ERROR_CLASSES = [c for _, c in inspect.getmembers(errors, inspect.isclass)
                 if issubclass(c, errors.RagError)]
README = ROOT / "README.md"


def test_every_error_class_carries_the_whole_contract() -> None:
    codes: dict[str, type] = {}
    for cls in ERROR_CLASSES:
        assert 400 <= cls.status <= 599, cls
        assert re.fullmatch(r"[a-z_]+", cls.type), cls
        assert re.fullmatch(r"[a-z_]+", cls.code), cls
        assert cls.exit_code in errors.EXIT_CODES and cls.exit_code != 0, cls
        assert cls.__doc__, cls
        assert cls.code not in codes, f"{cls.__name__} reuses {codes.get(cls.code)}'s code {cls.code!r}"
        codes[cls.code] = cls
    assert {"collection_not_found", "embedder_mismatch", "model_not_found", "upstream_rate_limited",
            "migration_failed"} <= set(codes)


def test_statuses_and_exit_codes_follow_the_meaning() -> None:
    assert (errors.InvalidInput.status, errors.InvalidInput.exit_code) == (400, 2)
    assert (errors.CollectionNotFound.status, errors.CollectionNotFound.exit_code) == (404, 3)
    assert (errors.CollectionExists.status, errors.CollectionExists.exit_code) == (409, 4)
    assert (errors.MissingCredentials.status, errors.MissingCredentials.exit_code) == (503, 5)
    assert (errors.UpstreamRateLimited.status, errors.UpstreamRateLimited.exit_code) == (429, 6)
    assert (errors.UpstreamTimeout.status, errors.UpstreamTimeout.type) == (504, "timeout_error")
    assert errors.UpstreamError.for_status(429, "slow down").code == "upstream_rate_limited"
    assert errors.UpstreamError.for_status(500, "broken").status == 502


def test_readme_lists_the_exit_codes() -> None:
    text = README.read_text()
    for code, meaning in errors.EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in text, f"README lacks exit code {code}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("contract")
    with TestClient(app=create_app(Settings(home=home), warm_up=False)) as client:
        assert client.post("/collections", json={"name": "c"}).status_code == 201
        yield client


def error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_http_errors_carry_code_and_param(client: TestClient) -> None:
    e = error(client.post("/collections/c/search", json={"query": "x", "mode": "fuzzy"}), 400)
    assert (e["param"], e["code"], e["type"]) == ("mode", "invalid_input", "invalid_request_error")
    e = error(client.post("/collections/c/search", json={"k": 3}), 400)
    assert (e["param"], e["code"]) == ("query", "invalid_input")
    e = error(client.post("/collections/c/search", json={"query": "x", "k": "many"}), 400)
    assert e["param"] == "k"
    e = error(client.post("/collections/c/documents", json={"documents": [{"title": "no text"}]}), 400)
    assert e["param"] == "documents[0].text"
    e = error(client.post("/collections/nope/search", json={"query": "x"}), 404)
    assert (e["code"], e["type"]) == ("collection_not_found", "not_found_error")
    e = error(client.post("/collections", json={"name": "c"}), 409)
    assert e["code"] == "collection_exists"
    e = error(client.post("/v1/embeddings", json={"model": "nope", "input": "x"}), 404)
    assert (e["code"], e["param"]) == ("model_not_found", "model")
    e = error(client.post("/collections/c/documents", files={"files": ("a.xyz", b"data")}), 415)
    assert e["code"] == "files_rejected" and e["files"][0]["code"] == "unsupported_file"
    e = error(client.get("/no/such/route"), 404)
    assert e["code"] == "route_not_found"


def test_an_upload_over_the_limit_is_upload_too_large(tmp_path: Path) -> None:
    with TestClient(app=create_app(Settings(home=tmp_path, max_upload_mb=1), warm_up=False)) as client:
        e = error(client.post("/collections", content=b"x" * (2 * 1024 * 1024),
                              headers={"content-type": "application/json"}), 413)
        assert e["code"] == "upload_too_large"


def test_cli_exit_codes_follow_the_error(rag_env: Path, openai_server, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(*args: str) -> int:
        return CliRunner().invoke(main, list(args), catch_exceptions=False).exit_code

    assert run("search", "x", "-c", "nope") == 3
    assert run("similarity", "a", "b", "--embedder", "openai") == 5  # no OPENAI_API_KEY
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.url)
    openai_server.fail_next(429, times=10)
    assert run("similarity", "a", "b", "--embedder", "openai") == 6  # was 2, "usage error"
