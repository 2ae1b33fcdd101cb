"""One writer of an on-disk index at a time, across threads and processes.

An advisory `flock` on a lock file beside the index: held while a process writes the index's
temporary file and renames it into place. flock belongs to the open file, not the process, so two
threads of one process exclude each other as two processes do. A process that finds the lock taken
does not wait: another one is writing the same index, and it catches up from the change log.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["try_exclusive"]


@contextmanager
def try_exclusive(path: Path) -> Iterator[bool]:
    """Try to lock `path` (created if missing) without waiting; yields whether this holder has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
