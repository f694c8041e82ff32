"""Silencing native code's writes to stderr (Polars' panic messages on garbage input)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

__all__ = ["native_stderr_silenced"]

_SILENCE = threading.Lock()


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to /dev/null meanwhile.

    Polars' Avro reader panics on some garbage; the panic is caught (the batch is then
    split to find the poison message), but Rust's panic hook has already printed a
    message and a backtrace to fd 2, which would only alarm an operator. Python's own
    output is not lost when ``sys.stderr`` writes to a duplicate of fd 2 (the CLI sets
    that up at start).
    """
    with _SILENCE:
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all: nothing to silence
            yield
            return
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)
