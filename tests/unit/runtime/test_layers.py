"""The core reads no file: what import contracts cannot see (`make lint` checks imports),
this scan of its source does."""

from __future__ import annotations

import re
from pathlib import Path

CORE = Path(__file__).resolve().parents[3] / "rater" / "core"
# Calls that touch the file system: builtins, pathlib and the readers and writers of
# Polars (reading Arrow IPC from bytes in memory is not file access).
FILE_ACCESS = re.compile(
    r"\bopen\(|\.read_text\(|\.read_bytes\(|\.write_text\(|\.write_bytes\(|"
    r"\bpl\.(read|scan)_(csv|parquet|avro|ndjson|json|excel|delta)\(|"
    r"\.write_(csv|parquet|ndjson|json|avro)\(|\.sink_|\bPath\("
)


def test_the_core_does_no_file_io() -> None:
    found = [
        f"{path.relative_to(CORE.parent.parent)}:{n}: {line.strip()}"
        for path in sorted(CORE.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FILE_ACCESS.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []


def test_the_scan_sees_file_access() -> None:
    for line in ('open("x")', "p.read_text()", "pl.read_csv(p)", "df.write_parquet(f)"):
        assert FILE_ACCESS.search(line), line
    assert not FILE_ACCESS.search("pl.read_ipc(io.BytesIO(data))")
