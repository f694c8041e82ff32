"""Operating-system helpers for the broker's JVM: ports, liveness, stopping a process group."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from rater.devbroker.errors import BrokerError

__all__ = [
    "await_ready",
    "cluster_id",
    "die_with_parent",
    "free_port",
    "is_our_broker",
    "megabytes",
    "pid_alive",
    "stop_child",
    "terminate",
]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it can be bound on 127.0.0.1, else a free ephemeral port."""
    if preferred:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", preferred))
            except OSError:
                pass
            else:
                return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cluster_id() -> str:
    """A new KRaft cluster id."""
    # Kafka's Uuid text form: URL-safe base64 of 16 bytes, unpadded, never starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def die_with_parent() -> None:
    """Run in the child before exec: the kernel SIGTERMs the JVM if this process dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists"; treat it as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def is_our_broker(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a Kafka JVM using ``data_dir`` (guards against a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and str(data_dir / "server.properties").encode() in cmdline


def terminate(pid: int, grace_s: float) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL it after ``grace_s``."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    log.warning("broker pid %d did not stop in %.0fs; killing it", pid, grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def await_ready(
    proc: subprocess.Popen[bytes] | None,
    probe: Callable[[], bool],
    timeout_s: float,
    *,
    exited: Callable[[int | None], str],
    silent: str,
) -> None:
    """Poll ``probe`` until it answers True; BrokerError(``exited(status)``) if the child
    ``proc`` stops first, BrokerError(``silent``) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is None or proc.poll() is not None:
            raise BrokerError(exited(proc.returncode if proc is not None else None))
        if probe():
            return
        if time.monotonic() > deadline:
            raise BrokerError(silent)
        time.sleep(0.2)


def stop_child(proc: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    """Stop a child process this process started (see :func:`terminate`) and reap it."""
    if proc is None:
        return
    if proc.poll() is None:
        terminate(proc.pid, grace_s)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def megabytes(heap: str) -> int:
    """A JVM heap size (``768m``, ``1g``, bytes) in megabytes."""
    unit = heap[-1].lower()
    value = int(heap[:-1]) if unit in "kmg" else int(heap)
    return {"k": value // 1024, "m": value, "g": value * 1024}.get(unit, value // (1 << 20))
