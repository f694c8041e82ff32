"""`make bench`: every benchmark, one after the other, with their default sizes.

Each prints its own figures; docs/benchmarks.md records them with the date and machine.
Pass --quick for smaller sizes (a smoke run of the benchmark code, not figures to quote).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = [
    ["bench_core.py", "--records", "1000000"],
    ["bench_decode.py"],
    ["bench_stream.py", "--records", "1000000"],
    ["bench_produce.py", "--messages", "200000", "--runs", "3"],
    ["bench_latency.py", "--rate", "50000", "--seconds", "30"],
    ["bench_scaleout.py", "--records", "1000000"],
    ["bench_state_rss.py", "--tenants", "100000", "--records", "1000000"],
    ["bench_invoice.py", "--records", "10000000", "--tenants", "10000", "--runs", "3"],
    ["bench_reports.py", "--records", "10000000", "--tenants", "10000", "--runs", "5"],
]
QUICK = [
    ["bench_core.py", "--records", "100000", "--runs", "2"],
    ["bench_stream.py", "--records", "50000", "--runs", "1"],
    ["bench_latency.py", "--rate", "2000", "--seconds", "5", "--warmup", "1"],
    ["bench_scaleout.py", "--records", "50000", "--runs", "1"],
    ["bench_state_rss.py", "--tenants", "5000", "--records", "50000", "--rates", "5000"],
    ["bench_invoice.py", "--records", "100000", "--tenants", "100", "--runs", "1"],
    ["bench_reports.py", "--records", "100000", "--tenants", "100", "--runs", "1"],
]


def main() -> int:
    runs = QUICK if "--quick" in sys.argv[1:] else FULL
    failed = 0
    for cmd in runs:
        print(f"\n=== {' '.join(cmd)}", flush=True)
        failed += subprocess.call([sys.executable, str(HERE / cmd[0]), *cmd[1:]]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
