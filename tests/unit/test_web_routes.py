"""The browser side: what answers without a key, what needs one, the headers every response
carries, and the docs page built from Swagger UI 5 with no inline script."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from litestar.testing import TestClient
from support.fake_embedder import KIND

from api.app import create_app
from rag.config import Settings

PUBLIC = ["/", "/static/app.css", "/static/js/main.js", "/static/docs-init.js", "/schema/swagger",
          "/schema/openapi.json", "/schema/assets/swagger-ui-bundle.js", "/schema/assets/swagger-ui.css", "/health",
          "/health/live", "/health/ready"]
"""Answer without a key when RAG_API_KEYS is set."""
PRIVATE = [("GET", "/collections"), ("POST", "/collections"), ("GET", "/collections/wren"),
           ("DELETE", "/collections/wren"), ("GET", "/collections/wren/documents"),
           ("POST", "/collections/wren/documents"), ("GET", "/collections/wren/documents/1"),
           ("DELETE", "/collections/wren/documents/1"), ("POST", "/collections/wren/search"),
           ("POST", "/collections/wren/ask"), ("POST", "/similarity"), ("GET", "/v1/models"),
           ("POST", "/v1/embeddings"), ("POST", "/v1/chat/completions"), ("GET", "/v1/models/extractive"),
           ("GET", "/metrics"), ("DELETE", "/collections/wren/documents")]
"""Read or change data: 401 without a key."""


@pytest.fixture
def keyed_client(monkeypatch):
    monkeypatch.setenv("RAG_API_KEYS", "k1")
    with TestClient(app=create_app(replace(Settings.from_env(), embedder=KIND), warm_up=False)) as client:
        yield client


@pytest.mark.parametrize("path", PUBLIC)
def test_public_routes_answer_without_a_key_with_the_security_headers(keyed_client, path):
    response = keyed_client.get(path)
    assert response.status_code == 200, path
    # The docs (Swagger UI) may show data: images besides; nothing else differs.
    csp = ("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'" if path.startswith("/schema/")
           else "default-src 'self'; frame-ancestors 'none'")
    assert response.headers["content-security-policy"] == csp
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("method", "path"), PRIVATE)
def test_data_routes_need_a_key(keyed_client, method, path):
    response = keyed_client.request(method, path, json={})
    assert response.status_code == 401, (method, path)
    assert response.headers["content-security-policy"] == "default-src 'self'; frame-ancestors 'none'"


def test_every_documented_operation_but_health_is_in_the_private_list(keyed_client):
    schema = keyed_client.get("/schema/openapi.json").json()
    documented = {(method.upper(), re.sub(r"\{[^}]+\}", "x", path)) for path, ops in schema["paths"].items()
                  for method in ops if method in {"get", "post", "put", "delete", "patch"}}
    listed = {(m, re.sub(r"/wren|/1$", "/x", p).replace("/x/documents/1", "/x/documents/x")) for m, p in PRIVATE}
    passthrough = {op for op in documented if op[1].startswith("/v1/") and op not in listed}
    assert documented - listed - passthrough == {("GET", "/health"), ("GET", "/health/live"), ("GET", "/health/ready")}


def test_the_docs_page_loads_swagger_ui_5_from_this_service_with_no_inline_script(keyed_client):
    page = keyed_client.get("/schema/swagger").text
    assert "http://" not in page and "https://" not in page  # nothing from a CDN
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all('src="/' in attrs and not body.strip() for attrs, body in scripts)
    bundle = keyed_client.get("/schema/assets/swagger-ui-bundle.js").text
    assert "isOAS31" in bundle  # Swagger UI 5 reads OpenAPI 3.1 (4.x could not)
    assert "/schema/openapi.json" in keyed_client.get("/static/docs-init.js").text


def test_the_page_has_no_inline_script_or_style_and_nothing_from_elsewhere(keyed_client):
    page = keyed_client.get("/").text
    assert "http://" not in page and "https://" not in page
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert not re.search(r"\son[a-z]+=", page)
