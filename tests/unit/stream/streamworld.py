"""Helpers of the streaming tests: a world without a broker: the in-memory Kafka of rater.stream.testing, the
example tariff, a fake wall clock and a dataset directory, plus readers of its outputs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from rater import wire
from rater.core.columns import CDR_SCHEMA, RATED_EXTRA_SCHEMA
from rater.core.rating import rate_batch
from rater.core.state import RatingState
from rater.core.tariff import Tariff
from rater.settings import Settings, load_settings
from rater.simulate import generate_cdrs
from rater.stream.job import RaterJob, RunSummary
from rater.stream.testing import FakeClock, FakeCluster

CONFIG = Path(__file__).resolve().parents[3] / "config"
COMPARED = [*CDR_SCHEMA, *RATED_EXTRA_SCHEMA]
PARTITIONS = 3


@dataclass
class World:
    cluster: FakeCluster
    clock: FakeClock
    settings: Settings
    tariff: Tariff
    root: Path

    def job(self, instance: str = "a") -> RaterJob:
        return RaterJob(
            self.settings,
            self.tariff,
            instance,
            clients=self.cluster,
            clock=self.clock,
            sleep=lambda s: None,
        )

    def run(self, instance: str = "a") -> RunSummary:
        return self.job(instance).run(handle_signals=False)

    def cdrs(self, count: int, seed: int, **kw: Any) -> pl.DataFrame:
        now = datetime.fromtimestamp(self.clock.now, UTC)
        return generate_cdrs(CONFIG, count, seed, now=now, **kw)

    def publish_cdrs(self, frame: pl.DataFrame) -> None:
        values = wire.encode_cdrs(frame.select(list(CDR_SCHEMA)))
        for value, tenant in zip(values, frame.get_column("tenant_id").to_list(), strict=True):
            self.cluster.publish(self.settings.topics.cdrs, value, tenant.encode())

    def rated(self) -> pl.DataFrame:
        rows = [wire.decode_rated(m.value()) for m in self.cluster.messages("rated-usage")]
        return pl.DataFrame(rows, infer_schema_length=None)

    def dead_letters(self) -> list[tuple[str, Any]]:
        return [
            (dict(m.headers())["rater.reason"].decode(), m)
            for m in self.cluster.messages("cdrs-dlq")
        ]

    def dataset(self) -> pl.DataFrame:
        files = sorted((self.root / "rated").glob("month=*/*.parquet"))
        if not files:
            return pl.DataFrame()
        return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")

    def staged(self) -> list[Path]:
        return [p for p in self.root.rglob("_staging/**/*") if p.is_file()]


def reference(tariff: Tariff, frame: pl.DataFrame) -> pl.DataFrame:
    """What `rater rate-file` makes of the same records in the same order."""
    return rate_batch(tariff, frame.select(list(CDR_SCHEMA)), RatingState.empty()).rated


def canonical(rated: pl.DataFrame) -> pl.DataFrame:
    """Rated rows comparable across sources: the contract's columns, sorted."""
    return rated.select(
        pl.col(c).cast(d) for c, d in {**CDR_SCHEMA, **RATED_EXTRA_SCHEMA}.items()
    ).sort(COMPARED)


def make_settings(root: Path, **stream: Any) -> Settings:
    return load_settings(
        tariff_dir=CONFIG,
        metrics_enabled=False,
        topics={"partitions": PARTITIONS},
        stream={
            "idle_exit_s": 0.05,
            "batch_max_wait_ms": 20,
            "batch_max_records": 400,
            "snapshot_every_batches": 3,
            **stream,
        },
        output={"dataset_dir": root, "duckdb_path": root / "rater.duckdb"},
    )
