"""Where files go: a local directory, written atomically.

A file is written under a temporary name in its final directory, fsynced, then
renamed over the final name, so a reader sees either the whole old file or the
whole new one, and a replay of the same name replaces instead of duplicating.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["LocalDirectory", "atomic_write"]


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(fileobj)`` with a temp file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalDirectory:
    """A root directory holding relative paths."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, relpath: str, write: Callable[[IO[bytes]], None]) -> Path:
        path = self.root / relpath
        atomic_write(path, write)
        return path

    def glob(self, pattern: str) -> Iterator[str]:
        if not self.root.exists():
            return
        for p in self.root.glob(pattern):
            if not p.name.startswith("."):
                yield p.relative_to(self.root).as_posix()

    def delete(self, relpath: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / relpath).unlink()
