"""A DuckDB database of views over the Parquet datasets, for invoicing and reports.

The database holds no copy of the rows, only views, so it can never disagree with the
files: a replay that replaces a file is seen by the next query.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

__all__ = ["DuckDBCatalog"]

log = logging.getLogger(__name__)

# A consumed CDR is identified by where it was read from.
_ROW_KEY = ("source_topic", "source_partition", "source_offset")


class DuckDBCatalog:
    """Creates (or replaces) the reporting views in ``db_path``.

    Views:
    - ``rated_usage``: one row per consumed CDR, the newest writer generation of each
      source offset (see sinks.parquet_dataset for why a superseded row can exist on disk).
    - ``balance_events``: low_balance / exhausted events, deduplicated the same way.
    - ``usage_by_tenant_month``: records, billed seconds and charges per tenant, month,
      status and currency.
    - ``balance_adjustments``: applied top-ups, refunds and charges with the balance after
      each (when the dataset has an ``adjustments/`` directory).
    """

    def __init__(
        self, db_path: Path, rated_dir: Path, events_dir: Path, adjustments_dir: Path | None = None
    ) -> None:
        self.db_path = Path(db_path)
        self.rated_dir = Path(rated_dir).resolve()
        self.events_dir = Path(events_dir).resolve()
        self.adjustments_dir = None if adjustments_dir is None else Path(adjustments_dir).resolve()

    @staticmethod
    def of(db_path: Path, dataset_dir: Path) -> DuckDBCatalog:
        """The catalog of a dataset directory with ``rated/``, ``events/``, ``adjustments/``."""
        root = Path(dataset_dir)
        return DuckDBCatalog(db_path, root / "rated", root / "events", root / "adjustments")

    def refresh(self) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(self.db_path)) as con:
            self._dedup_view(con, "rated_usage", self.rated_dir, _ROW_KEY)
            self._dedup_view(con, "balance_events", self.events_dir, (*_ROW_KEY, "event"))
            if self.adjustments_dir is not None:
                self._dedup_view(con, "balance_adjustments", self.adjustments_dir, _ROW_KEY)
            if _has_files(self.rated_dir):
                con.execute(
                    """
                    CREATE OR REPLACE VIEW usage_by_tenant_month AS
                    SELECT tenant_id, month, status, currency,
                           count(*) AS records,
                           sum(coalesce(billed_seconds, 0)) AS billed_seconds,
                           sum(charge_micros) AS charge_micros
                    FROM rated_usage
                    GROUP BY ALL
                    """
                )

    def _dedup_view(
        self, con: duckdb.DuckDBPyConnection, name: str, root: Path, key: tuple[str, ...]
    ) -> None:
        if not _has_files(root):
            log.debug("no files under %s yet; view %s not created", root, name)
            return
        pattern = str(root / "month=*" / "*.parquet").replace("'", "''")
        con.execute(
            f"""
            CREATE OR REPLACE VIEW {name} AS
            SELECT * EXCLUDE (_rank) FROM (
                SELECT *, row_number() OVER (
                    PARTITION BY {", ".join(key)}
                    ORDER BY writer_generation DESC) AS _rank
                FROM read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)
            ) WHERE _rank = 1
            """
        )


def _has_files(root: Path) -> bool:
    return root.exists() and any(root.glob("month=*/*.parquet"))
