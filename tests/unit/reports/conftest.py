"""Fixtures of the reports' tests: one tariff with hostile tenants, one simulated traffic
rated by ``rate-file`` (as emitted, and in rating-time order), shared by the session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reportdeck import (
    Deck,
    adjustments,
    in_rating_order,
    rated_output,
    traffic,
    write_adjustments,
    write_tariff,
)

from rater.tariff_files import load_tariff


@pytest.fixture(scope="session")
def deck(tmp_path_factory: pytest.TempPathFactory) -> Deck:
    root = tmp_path_factory.mktemp("reports")
    tariff_dir = write_tariff(root / "tariff")
    cdrs = traffic(tariff_dir, 8_000, seed=11)
    adjustments_csv = write_adjustments(root / "adjustments.csv", adjustments(cdrs, 120, seed=3))
    rated_dir = rated_output(tariff_dir, cdrs, adjustments_csv, root / "rated")
    ordered_dir = rated_output(tariff_dir, in_rating_order(cdrs), adjustments_csv, root / "ordered")
    return Deck(tariff_dir, load_tariff(tariff_dir), cdrs, rated_dir, ordered_dir, adjustments_csv)
