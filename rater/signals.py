"""Stop requests (SIGTERM, SIGINT) caught from the very start of a command.

``rater run`` is stopped by SIGTERM in production (Kubernetes, systemd, docker stop). A
signal that arrives while the command is still starting (loading its modules, the tariff,
restoring state) must stop it cleanly, with exit status 0 and nothing half-written, not
kill it. The CLI installs these handlers before anything heavy is imported; the streaming
job asks :func:`requested` at each step of its start and takes the signals over when it
runs (finish the current batch, then stop).

Other commands keep the usual meaning: a signal ends them at once (``SystemExit``, so
their ``finally`` blocks still remove temporary files).
"""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["install", "requested"]

_requested = False
_graceful = False


def install(*, graceful: bool) -> None:
    """Handle SIGTERM and SIGINT: remember the request (``graceful``) or exit now."""
    global _graceful
    _graceful = graceful
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _handle)
    # A supervisor may start us with these blocked so that none is lost before this point.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})


def requested() -> bool:
    """Whether a stop was requested since :func:`install`."""
    return _requested


def _handle(signum: int, frame: FrameType | None) -> None:
    global _requested
    _requested = True
    if not _graceful:
        raise SystemExit(128 + signum)
