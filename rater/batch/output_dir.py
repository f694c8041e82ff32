"""An output directory that never shows a half-written file, shared by the batch commands.

Files are written under temporary names (``.<name>.<pid>.tmp``) in the output directory
and renamed into place only once all of them are complete; the temporary files a killed
run left behind are removed by the next run (only names of the command's own outputs,
and only when the process that wrote them is gone). The directory is checked (created if
missing, proven writable) before any input is read, so a bad ``--output`` fails fast
with one line. Nothing else in it is touched.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import polars as pl

from rater.errors import UsageError

__all__ = ["path_exists", "prepare_output_dir", "reason", "write_atomically"]

log = logging.getLogger(__name__)

# A run writes its temporary files within minutes; one untouched this long is stale
# even if its pid now belongs to another process.
_STALE_TEMP_SECONDS = 24 * 3600


def path_exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return True  # present but unreadable: loading it says why


def prepare_output_dir(
    output_dir: Path, names: Iterable[str] | re.Pattern[str], flag: str = "--output"
) -> None:
    """Create ``output_dir`` if missing, prove it writable, and remove the stale temporary
    files of the outputs ``names`` (file names, or a pattern of them).

    Raises UsageError (one line, with the fix) when it is not a directory, cannot be
    created or cannot be written to.
    """
    try:
        if output_dir.exists() and not output_dir.is_dir():
            raise UsageError(
                f"{flag} {output_dir}: exists and is not a directory. "
                "Fix: choose a directory (it is created if missing)"
            )
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"{flag} {output_dir}: cannot be created ({reason(exc)}). "
            "Fix: choose a directory you can write to"
        ) from None
    _check_writable(output_dir, flag)
    outputs = (
        names.pattern if isinstance(names, re.Pattern) else "|".join(re.escape(n) for n in names)
    )
    _remove_stale_temps(output_dir, re.compile(rf"\.(?P<name>{outputs})\.(?P<pid>[0-9]+)\.tmp"))


def write_atomically(
    output_dir: Path, writers: Mapping[str, Callable[[Path], None]], flag: str = "--output"
) -> None:
    """Each ``writers[name](path)`` writes one file to a temporary path; once all are
    written they are renamed into place, in the order given (put last the file whose
    presence says the others are complete). UsageError, one line, when writing fails."""
    temps: dict[str, Path] = {}
    try:
        for name, write in writers.items():
            tmp = output_dir / f".{name}.{os.getpid()}.tmp"
            temps[name] = tmp
            write(tmp)
        for name, tmp in temps.items():
            os.replace(tmp, output_dir / name)
    except (OSError, pl.exceptions.PolarsError) as exc:
        why = reason(exc) if isinstance(exc, OSError) else str(exc).strip().split("\n")[0]
        raise UsageError(
            f"{flag} {output_dir}: writing the results failed ({why}). "
            "Fix: free some space or choose another directory you can write to"
        ) from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _check_writable(output_dir: Path, flag: str) -> None:
    """Create and remove a probe file: the only test that holds for every user
    (root included), file system (read-only mounts) and access control scheme."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".rater-write-check.", dir=output_dir)
    except OSError as exc:
        raise UsageError(
            f"{flag} {output_dir}: not writable ({reason(exc)}). "
            "Fix: choose a directory you can write to"
        ) from None
    os.close(handle)
    Path(probe).unlink(missing_ok=True)


def _remove_stale_temps(output_dir: Path, temp_name: re.Pattern[str]) -> None:
    """Delete temporary output files of runs that no longer exist."""
    try:
        entries = list(os.scandir(output_dir))
    except OSError:
        return
    for entry in entries:
        match = temp_name.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        if _process_alive(int(match["pid"])) and not _untouched_for_long(entry):
            continue  # another run writing right now: leave it
        try:
            os.unlink(entry.path)
            log.info("removed %s, left by an interrupted run", entry.path)
        except OSError as exc:
            log.warning("cannot remove %s (%s)", entry.path, reason(exc))


def _untouched_for_long(entry: os.DirEntry[str]) -> bool:
    try:
        modified = entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    return time.time() - modified > _STALE_TEMP_SECONDS


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours from an earlier call in this process, now stale
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # exists, but belongs to another user
    except (ProcessLookupError, OverflowError):
        return False  # gone, or a number no process can have
    return True
