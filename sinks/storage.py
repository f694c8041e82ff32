"""Where files go: a local directory, written durably and published by rename.

Files are written in full (and fsynced) before anyone is meant to read them, then moved
into place with one rename, so a reader sees either no file or the whole file. A rename
within one file system is atomic: a crash leaves the file on one side or the other,
never half of it on the reading side.
"""

from __future__ import annotations

import contextlib
import os
import shutil
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
    # A rename or a new entry is durable only once the directory entry is.
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
        """Write a file in full and fsync it (under its final name: for a staging area)."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        return path

    def move(self, source: str, target: str) -> bool:
        """Rename ``source`` over ``target`` and make it durable; False when ``source`` is
        gone (someone else moved it first)."""
        dest = self.root / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self.root / source, dest)
        except FileNotFoundError:
            return False
        _fsync_dir(dest.parent)
        return True

    def glob(self, pattern: str) -> Iterator[str]:
        if not self.root.exists():
            return
        for p in self.root.glob(pattern):
            if not p.name.startswith("."):
                yield p.relative_to(self.root).as_posix()

    def files_under(self, relpath: str) -> list[str]:
        """Every file below ``relpath``, as paths relative to ``relpath``."""
        base = self.root / relpath
        if not base.is_dir():
            return []
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

    def delete_tree(self, relpath: str) -> None:
        shutil.rmtree(self.root / relpath, ignore_errors=True)

    def delete(self, relpath: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / relpath).unlink()
