"""The pid and state files a broker leaves in its data directory.

They let a later process (``rater broker status|stop``) find and stop a broker it did not
start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rater.devbroker.process import is_our_broker, pid_alive, terminate

__all__ = [
    "PID_FILE",
    "STATE_FILE",
    "clear_state",
    "read_state",
    "running_state",
    "stop_from_state",
    "write_state",
]

STATE_FILE = "broker.json"
PID_FILE = "broker.pid"


def write_state(data_dir: Path, state: dict[str, Any]) -> None:
    """Record a started broker: its pid (``state["pid"]``) and ``state`` as JSON."""
    (data_dir / PID_FILE).write_text(f"{state['pid']}\n")
    (data_dir / STATE_FILE).write_text(json.dumps(state))


def clear_state(data_dir: Path) -> None:
    """Forget the broker recorded in ``data_dir``."""
    for name in (STATE_FILE, PID_FILE):
        (data_dir / name).unlink(missing_ok=True)


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The state a broker started in ``data_dir`` recorded, or None."""
    try:
        state: dict[str, Any] = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state


def running_state(data_dir: Path) -> dict[str, Any] | None:
    """The recorded state of the broker in ``data_dir`` if it is running, else None."""
    state = read_state(data_dir)
    if state is None:
        return None
    pid = int(state["pid"])
    return state if pid_alive(pid) and is_our_broker(pid, data_dir) else None


def stop_from_state(data_dir: Path, grace_s: float = 30.0) -> bool:
    """Stop the broker recorded in ``data_dir``; False when none was running."""
    state = read_state(data_dir)
    if state is None:
        return False
    pid = int(state["pid"])
    running = pid_alive(pid) and is_our_broker(pid, data_dir)
    if running:
        terminate(pid, grace_s)
    clear_state(data_dir)
    return running
