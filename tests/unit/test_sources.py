"""Upload identity: a source per uploaded file, what each upload changed, and listing and deleting
by source (exact) or source prefix (a folder), over HTTP and on the command line; and unknown
query parameters refused by name."""

from __future__ import annotations

from dataclasses import replace

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from support.fake_embedder import KIND
from support.responses import error_of

from api.app import create_app
from ingest.cli import main
from rag.config import Settings

DOCS = "/collections/wren/documents"


@pytest.fixture
def client(fake_home):
    with TestClient(app=create_app(replace(Settings.from_env(), embedder=KIND), warm_up=False)) as c:
        yield c


def upload(client: TestClient, files: list[tuple[str, bytes]], sources: list[str] | None = None,
           headers: list[dict[str, str]] | None = None) -> list[dict]:
    parts = [("files", (name, data, "text/plain", (headers or [{}] * len(files))[i]))
             for i, (name, data) in enumerate(files)]
    response = client.post(DOCS, params={"wait": "true"}, files=parts, data={"source": sources} if sources else None)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def sources_under(client: TestClient, **query: str) -> list[str]:
    return sorted(d["source"] for d in client.get(DOCS, params=query).json()["data"])


def test_same_file_name_in_two_folders_keeps_two_documents(client):
    first = upload(client, [("rides.txt", b"Bike rides along the north shore."),
                            ("rides.txt", b"Bus rides through the southern hills.")],
                   sources=["notes/rides.txt", "other/rides.txt"])
    assert [(d["source"], d["change"]) for d in first] == [("notes/rides.txt", "created"),
                                                          ("other/rides.txt", "created")]
    assert first[0]["id"] != first[1]["id"]
    assert sources_under(client, source_prefix="notes/") == ["notes/rides.txt"]
    assert sources_under(client, source="other/rides.txt") == ["other/rides.txt"]


def test_each_upload_reports_created_updated_or_unchanged(client):
    assert upload(client, [("a.txt", b"First words.")], sources=["notes/a.txt"])[0]["change"] == "created"
    assert upload(client, [("a.txt", b"First words.")], sources=["notes/a.txt"])[0]["change"] == "unchanged"
    changed = upload(client, [("a.txt", b"Second words.")], sources=["notes/a.txt"])[0]
    assert (changed["change"], changed["status"]) == ("updated", "ready")
    # Without a source the file name is the source, as before.
    assert upload(client, [("solo.txt", b"Solo one.")])[0]["source"] == "solo.txt"
    assert upload(client, [("solo.txt", b"Solo two.")])[0]["change"] == "updated"


def test_a_part_header_names_the_files_source(client):
    done = upload(client, [("a.txt", b"Alpha text."), ("b.txt", b"Beta text.")],
                  headers=[{"X-Source": "inbox/a.txt"}, {}])
    assert [d["source"] for d in done] == ["inbox/a.txt", "b.txt"]


def test_sources_must_pair_with_the_files(client):
    files = [("files", ("a.txt", b"Alpha.")), ("files", ("b.txt", b"Beta."))]
    refused = error_of(client.post(DOCS, files=files, data={"source": "only-one.txt"}), 400)
    assert refused["param"] == "source" and "one source field per file" in refused["message"]
    assert error_of(client.post(DOCS, files=files[:1], data={"source": " "}), 400)["param"] == "source"


def test_delete_by_source_or_folder_lists_the_deleted_ids(client):
    notes = upload(client, [("a.txt", b"Alpha."), ("b.txt", b"Beta."), ("c.txt", b"Gamma.")],
                   sources=["notes/a.txt", "notes/b.txt", "notes2/c.txt"])
    before = {d["source"] for d in client.get(DOCS).json()["data"]}

    gone = client.delete(DOCS, params={"source_prefix": "notes/"})
    assert gone.status_code == 200
    assert gone.json() == {"deleted": [notes[0]["id"], notes[1]["id"]], "chunks": 2}
    assert {d["source"] for d in client.get(DOCS).json()["data"]} == before - {"notes/a.txt", "notes/b.txt"}
    hits = client.post("/collections/wren/search", json={"query": "alpha beta", "mode": "lexical"}).json()["hits"]
    assert not any(h["source"].startswith("notes/") for h in hits)

    assert client.delete(DOCS, params={"source": "notes2/c.txt"}).json()["deleted"] == [notes[2]["id"]]
    assert client.delete(DOCS, params={"source": "notes2/c.txt"}).json() == {"deleted": [], "chunks": 0}


def test_a_bare_delete_of_documents_is_refused(client):
    count = len(client.get(DOCS).json()["data"])
    assert error_of(client.delete(DOCS), 400)["param"] == "source"
    assert error_of(client.delete(DOCS, params={"source": "a", "source_prefix": "b"}), 400)["param"] == "source"
    assert error_of(client.delete(DOCS, params={"source_prefix": ""}), 400)["param"] == "source_prefix"
    assert len(client.get(DOCS).json()["data"]) == count


@pytest.mark.parametrize(("method", "path", "query"), [
    ("GET", DOCS, {"sorce": "notes/a.txt"}),
    ("DELETE", DOCS, {"source_prefx": "notes/"}),
    ("GET", "/collections", {"limt": "5"}),
    ("POST", "/collections/wren/search", {"k": "3"}),  # k belongs in the body
])
def test_unknown_query_parameters_are_named(client, method, path, query):
    refused = error_of(client.request(method, path, params=query, json={"query": "panels"}), 400)
    (name,) = query
    assert refused["param"] == name and repr(name) in refused["message"]


def test_the_page_and_its_assets_ignore_query_strings(client):
    assert client.get("/static/app.css", params={"v": "2"}).status_code == 200


def test_the_command_line_lists_and_deletes_by_source(client):
    upload(client, [("a.txt", b"Alpha."), ("b.txt", b"Beta.")], sources=["notes/a.txt", "notes/b.txt"])
    runner = CliRunner()
    listed = runner.invoke(main, ["documents", "list", "-c", "wren", "--source-prefix", "notes/"],
                           catch_exceptions=False)
    assert listed.exit_code == 0 and "notes/a.txt" in listed.output and "welcome.md" not in listed.output
    deleted = runner.invoke(main, ["documents", "delete", "-c", "wren", "--source", "notes/a.txt"],
                            catch_exceptions=False)
    assert deleted.exit_code == 0 and "deleted 1 document(s)" in deleted.output
    assert sources_under(client, source_prefix="notes/") == ["notes/b.txt"]
    neither = runner.invoke(main, ["documents", "delete", "-c", "wren"])
    assert neither.exit_code == 2 and "--source-prefix" in neither.output
