from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rater.core.tariff import Tariff
from rater.tariff_files import load_tariff

# The shared builders live next to the tests, which are plain modules, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from coredeck import write_tariff


@pytest.fixture
def tariff(tmp_path: Path) -> Tariff:
    return load_tariff(write_tariff(tmp_path / "tariff"))
