"""Scale-out on one host: one `rater run` against two in one consumer group.

    .venv/bin/python bench/bench_scaleout.py --records 1000000

Publishes simulated CDRs once (4 partitions), then alternately drains the topic from the
start, under a new group each time, with one rater process and with two processes of one
group (each its own instance id, dataset directory and DuckDB file; the range assignor
gives each two partitions). Prints each process's own busy figure and the group's:
records consumed by all over the longest busy span (a process that joins later starts
its span later, so this slightly understates the pair). Uses KAFKA_BOOTSTRAP_SERVERS, or
starts a local broker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream import publish
from streamkit import REPO, broker, busy_rate, rater_env

from rater.stream.topics import TopicSpec, ensure_topics


def run_group(
    bootstrap: str, topic: str, workdir: Path, processes: int
) -> tuple[float, list[float]]:
    """(records per second of the group, each process's own rate)."""
    base = rater_env(bootstrap, topic, REPO / "config", workdir)
    procs = []
    for i in range(processes):
        env = dict(base)
        instance = f"{base['RATER_STREAM__INSTANCE_ID']}-{i}"
        out = workdir / instance
        env.update(
            RATER_STREAM__INSTANCE_ID=instance,
            RATER_OUTPUT__DATASET_DIR=str(out),
            RATER_OUTPUT__DUCKDB_PATH=str(out / "rater.duckdb"),
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "rater", "run"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
    rates, consumed, spans = [], 0, []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"rater run failed:\n{stdout}")
        rate, n = busy_rate(stdout)
        rates.append(rate)
        consumed += n
        spans.append(n / rate if rate else 0.0)
    return consumed / max(spans), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with broker() as bootstrap:
        topic = f"bench-scale-{uuid.uuid4().hex[:6]}"
        ensure_topics({"bootstrap.servers": bootstrap}, [TopicSpec(topic, 4)])
        publish(bootstrap, topic, args.records, seed=1)
        one, two = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.runs):
                single, _ = run_group(bootstrap, topic, Path(tmp), 1)
                pair, each = run_group(bootstrap, topic, Path(tmp), 2)
                one.append(single)
                two.append(pair)
                shares = ", ".join(f"{r:,.0f}" for r in each)
                print(
                    f"run {i + 1}: one process {single:,.0f} CDRs/s; two processes "
                    f"{pair:,.0f} CDRs/s together (each on its own: {shares})"
                )
        m1, m2 = statistics.median(one), statistics.median(two)
        print(f"median one process: {m1:,.0f} CDRs/s")
        print(f"median two processes, one group: {m2:,.0f} CDRs/s")
        print(f"ratio two/one: {m2 / m1:.2f} (cores: {os.cpu_count()})")


if __name__ == "__main__":
    main()
