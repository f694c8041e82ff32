"""Fixtures of the streaming tests (helpers in streamworld.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streamworld import CONFIG, PARTITIONS, World, make_settings

from rater.stream.testing import FakeClock, FakeCluster
from rater.tariff_files import load_tariff


@pytest.fixture
def world(tmp_path: Path) -> World:
    cluster = FakeCluster()
    for topic in ("cdrs", "topups", "adjustments"):
        cluster.create_topic(topic, PARTITIONS)
    root = tmp_path / "out"
    return World(cluster, FakeClock(), make_settings(root), load_tariff(CONFIG), root)
