"""Where the data lives: the default data folder, the old `./data` one, and what `rag info` reports.

The data folder (RAG_HOME) holds the database, the derived indexes and the built model. It defaults
to the per-user data folder platformdirs names (on Linux `$XDG_DATA_HOME/rag`, else
`~/.local/share/rag`), so every working folder sees the same collections and one model copy.
Earlier versions kept it in `./data` under the working folder: such a folder is still used when
RAG_HOME is unset, and the command line says how to move it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["APP_NAME", "LEGACY_HOME", "CollectionUsage", "DataInfo", "FileUsage", "collection_index_bytes",
           "default_home", "disk_usage", "legacy_home", "mask_password"]

APP_NAME = "rag"
LEGACY_HOME = Path("data")
"""The data folder of earlier versions, relative to the working folder."""


def default_home() -> Path:
    """The per-user data folder (platformdirs' user data dir for `rag`)."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def legacy_home(env: Mapping[str, str], cwd: Path | None = None) -> Path | None:
    """`./data` (resolved) when RAG_HOME is unset and it holds a database; else None."""
    if env.get("RAG_HOME", "").strip():
        return None
    folder = (cwd or Path.cwd()) / LEGACY_HOME
    return folder.resolve() if (folder / "rag.sqlite3").is_file() else None


_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@?#]*):(?P<password>[^@/?#]*)@")


def mask_password(url: str) -> str:
    """The URL with any password replaced by `***` (`scheme://user:***@host/...`)."""
    return _PASSWORD.sub(lambda m: f"{m.group('head')}:***@", url, count=1)


def disk_usage(path: Path) -> int:
    """Bytes under `path` (a file's size, or every file under a folder); 0 when it is missing."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:  # removed while we walked (a checkpoint's temporary file)
                pass
    return total


def collection_index_bytes(index_dir: Path, collection_id: int) -> int:
    """Bytes of one collection's index files: every `collection-ID` file or folder (and
    `collection-ID.*`) anywhere under `index_dir`, whichever engine wrote it."""
    if not index_dir.is_dir():
        return 0
    name = f"collection-{collection_id}"
    total = 0
    for root, folders, files in os.walk(index_dir):
        for entry in [*folders, *files]:
            if entry == name or entry.startswith(name + "."):
                total += disk_usage(Path(root) / entry)
        folders[:] = [f for f in folders if not (f == name or f.startswith(name + "."))]  # counted whole
    return total


@dataclass(frozen=True)
class FileUsage:
    """A file or folder of the data folder and its size on disk."""

    path: Path
    bytes: int


@dataclass(frozen=True)
class CollectionUsage:
    """A collection and the disk its derived indexes take (its rows live in the shared database)."""

    name: str
    embedder: str
    """`kind:model_id` of the embedder it is bound to."""
    documents: int
    chunks: int
    index_bytes: int
    """Dense and lexical index files of this collection."""


@dataclass(frozen=True)
class DataInfo:
    """What `rag info` reports about a data folder."""

    home: Path
    database_url: str
    """The database's URL, any password masked."""
    database_bytes: int
    """The database with its write-ahead log."""
    embedder: str
    """The embedder new collections get (RAG_EMBEDDER)."""
    chat_model: str | None
    """The chat model answers use; None without OPENAI_API_KEY (answers are extractive)."""
    models: list[FileUsage]
    """Built model files in the data folder."""
    collections: list[CollectionUsage]
