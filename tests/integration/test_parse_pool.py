"""Files are parsed in reused worker processes within a time and a memory limit (ingest.parse_pool)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.hostile_files import docx_bomb

from ingest.parse_pool import ParseLimits, ParserPool
from rag.errors import ParseLimitExceeded, UnreadableFile, UnsupportedFile

NOTE = b"# Bees\n\nBees dance to say where the flowers are.\n"


def _worker_pids(pool: ParserPool) -> set[int]:
    return {w.process.pid for w in pool._idle}


def test_workers_are_reused_file_after_file(tmp_path: Path) -> None:
    path = tmp_path / "bees.md"
    path.write_bytes(NOTE)
    with ParserPool(ParseLimits(workers=1)) as pool:
        [doc] = pool.load_bytes("bees.md", NOTE)
        first = _worker_pids(pool)
        started = time.perf_counter()
        for _ in range(5):
            [again] = pool.load_file(path)
        assert time.perf_counter() - started < 2.0  # no interpreter started per file
        assert _worker_pids(pool) == first and len(first) == 1
    assert doc.text == again.text == "Bees\n\nBees dance to say where the flowers are."
    assert again.source == str(path.resolve()) and doc.source == "bees.md"


def test_a_file_over_the_time_limit_is_killed_with_an_error_naming_it() -> None:
    with ParserPool(ParseLimits(workers=1, timeout_s=3.0)) as pool:
        pool.load_bytes("warm.md", NOTE)
        slow = ("a line of plain words\n" * 600_000).encode()  # many seconds for unstructured
        started = time.perf_counter()
        with pytest.raises(ParseLimitExceeded, match=r"longer than the limit of 3 s \(RAG_PARSE_TIMEOUT_S\)") as e:
            pool.load_bytes("slow.txt", slow)
        assert time.perf_counter() - started < 8.0
        assert e.value.status == 413 and e.value.code == "parse_limit_exceeded"
        # The next file gets a fresh worker.
        assert pool.load_bytes("bees.md", NOTE)[0].title == "Bees"


def test_a_file_over_the_memory_limit_fails_naming_it_and_the_pool_goes_on() -> None:
    # 150 MB of text: decoding and normalising it alone takes several copies, past 700 MB.
    big = b"word " * 30_000_000
    with ParserPool(ParseLimits(workers=1, memory_mb=700, timeout_s=120)) as pool:
        started = time.perf_counter()
        with pytest.raises(ParseLimitExceeded, match=r"more memory than the limit of 700 MB \(RAG_PARSE_MEMORY_MB\)"):
            pool.load_bytes("big.txt", big)
        assert time.perf_counter() - started < 60
        assert pool.load_bytes("bees.md", NOTE)[0].title == "Bees"


def test_a_docx_that_unzips_past_the_limit_is_refused_before_parsing() -> None:
    bomb = docx_bomb(40)
    assert len(bomb) < 1_000_000
    with ParserPool(ParseLimits(workers=1, max_unzipped_mb=16)) as pool:
        started = time.perf_counter()
        with pytest.raises(ParseLimitExceeded, match=r"unzips to 4\d MB, more than the limit of 16 MB "
                                                      r"\(RAG_MAX_UNZIPPED_MB\)"):
            pool.load_bytes("bomb.docx", bomb)
        assert time.perf_counter() - started < 10.0


def test_a_parser_error_keeps_its_class_and_message() -> None:
    with ParserPool(ParseLimits(workers=1)) as pool:
        with pytest.raises(UnreadableFile, match=r"broken\.docx: cannot parse DOCX"):
            pool.load_bytes("broken.docx", b"PK\x03\x04 not really a zip")
        with pytest.raises(UnsupportedFile, match=r"photo\.png: unsupported file type"):
            pool.load_bytes("photo.png", b"\x89PNG\r\n")
