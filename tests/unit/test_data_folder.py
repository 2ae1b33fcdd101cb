"""Where the data lives: RAG_HOME, the per-user default, an earlier version's ./data, `rag info`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from support.cli import run
from support.homes import SAMPLE_COLLECTION

from rag.config import Settings
from rag.data_folder import mask_password


@pytest.fixture
def unset_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """RAG_HOME unset, the working folder a fresh one; returns the per-user data folder."""
    monkeypatch.delenv("RAG_HOME")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return Path(os.environ["XDG_DATA_HOME"]) / "rag"


def test_the_default_data_folder_is_the_per_user_one(unset_home: Path):
    assert Settings.from_env().home == unset_home
    assert Settings().home == unset_home
    assert "data folder:  " + str(unset_home) in run("info").stdout


def test_rag_home_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "mine"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rag.sqlite3").touch()
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env().home == tmp_path / "mine"
    assert "note:" not in run("collections").stderr


def test_an_earlier_versions_data_folder_is_used_and_the_move_explained_once(
        unset_home: Path, fake_seeded_home: Path):
    old = Path.cwd() / "data"
    shutil.copytree(fake_seeded_home, old)
    assert Settings.from_env().home == old
    result = run("collections")
    assert SAMPLE_COLLECTION in result.stdout
    assert result.stderr.count("note: using") == 1
    assert f"the default data folder is now {unset_home}" in result.stderr
    assert f"mv {old}/rag.sqlite3* {old}/indexes {unset_home}/" in result.stderr
    # A folder without a database is not taken for one.
    (old / "rag.sqlite3").unlink()
    assert Settings.from_env().home == unset_home


def test_the_cli_names_the_data_folder_when_a_collection_is_missing(fake_home: Path):
    result = run("search", "anything", "-c", "nope", code=3)
    assert f"no collection named 'nope' in the data folder {fake_home}" in result.stderr


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://rag:s3cr%40t@db.example:5432/rag", "postgresql://rag:***@db.example:5432/rag"),
    ("postgresql+psycopg://u:p@localhost/x?sslmode=require", "postgresql+psycopg://u:***@localhost/x?sslmode=require"),
    ("postgresql://rag@db/rag", "postgresql://rag@db/rag"),
    ("sqlite:////home/me/data/rag.sqlite3", "sqlite:////home/me/data/rag.sqlite3"),
])
def test_passwords_are_masked(url: str, masked: str):
    assert mask_password(url) == masked


def test_info_lists_models_and_collections_with_their_sizes(fake_home: Path):
    (fake_home / "models").mkdir(exist_ok=True)
    (fake_home / "models" / "model.onnx").write_bytes(b"x" * 2048)
    facts = json.loads(run("info", "--json").stdout)
    assert facts["home"] == str(fake_home)
    assert facts["database_url"] == f"sqlite:///{fake_home / 'rag.sqlite3'}"
    assert facts["database_bytes"] > 0
    assert facts["models"] == [{"path": str(fake_home / "models" / "model.onnx"), "bytes": 2048}]
    [wren] = facts["collections"]
    assert (wren["name"], wren["documents"]) == (SAMPLE_COLLECTION, 17)
    assert wren["index_bytes"] > 0
    text = run("info").stdout
    assert "model:        model.onnx (2.0 KB)" in text
    assert text.splitlines()[-1].startswith(f"{SAMPLE_COLLECTION}\tfake:")
