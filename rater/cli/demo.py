"""``rater demo``: the whole product on an embedded default, in one command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rater.cli.flags import settings_from
from rater.demo import run_demo

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole flow on a local broker with simulated traffic, then summarize",
        description="Start a local Kafka broker, simulate switch traffic for the example "
        "tenants, rate it with the streaming job and print a summary.",
    )
    p.add_argument("--config", type=Path, default=None, help="tariff directory (default config/)")
    p.add_argument("--count", type=int, default=20_000, help="CDRs to simulate")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--output",
        type=Path,
        default=Path("demo-out"),
        help="output directory: new, empty, or written by an earlier demo (default demo-out)",
    )
    p.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    config = settings_from(tariff_dir=args.config).tariff_dir
    run_demo(config, args.count, args.seed, args.output, sys.stdout)
    return 0
