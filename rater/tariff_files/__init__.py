"""Reading a tariff directory: plans.yaml, rates.csv and tenants.csv.

:func:`load_tariff` validates the whole directory up front, so that a bad file stops the
rater with one line naming the file, the line and the fix (exit status 2) instead of
mis-rating traffic later, and hands the validated rows to the pure core
(:func:`rater.core.tariff.build_tariff`). This package does the file I/O the core never
does; it may import :mod:`rater.core`, :mod:`rater.errors` and the standard library.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rater.core.tariff import Tariff, build_tariff
from rater.errors import ConfigError
from rater.tariff_files.plans import PLANS_FILE, load_plans
from rater.tariff_files.rates import RATE_COLUMNS, RATES_FILE, check_charge_bounds, load_rates
from rater.tariff_files.subscriptions import (
    SUBSCRIPTION_COLUMNS,
    SUBSCRIPTIONS_FILE,
    load_subscriptions,
)
from rater.tariff_files.tenants import TENANT_COLUMNS, TENANTS_FILE, load_tenants

__all__ = [
    "PLANS_FILE",
    "RATES_FILE",
    "RATE_COLUMNS",
    "SUBSCRIPTIONS_FILE",
    "SUBSCRIPTION_COLUMNS",
    "TENANTS_FILE",
    "TENANT_COLUMNS",
    "load_tariff",
]

log = logging.getLogger(__name__)


def load_tariff(directory: Path) -> Tariff:
    """Read and validate plans.yaml, rates.csv, tenants.csv and (if present)
    subscriptions.csv from ``directory``.

    Raises ConfigError(file, line, problem, fix) on the first problem found.
    """
    directory = Path(directory)
    _check_directory(directory)
    plans_file = load_plans(directory)
    plans = plans_file.plans
    rates, scale = load_rates(directory, plans)
    if rates.height == 0:
        log.warning("%s has no rates: every CDR will be unrated (no_rate)", directory / RATES_FILE)
    check_charge_bounds(rates, scale, plans_file.max_call_seconds, str(directory / RATES_FILE))
    tenants = load_tenants(directory, plans)
    return build_tariff(
        plans,
        tenants,
        rates,
        scale,
        max_call_seconds=plans_file.max_call_seconds,
        subscriptions=load_subscriptions(directory, plans, tenants),
    )


def _check_directory(directory: Path) -> None:
    try:
        if directory.is_dir():
            return
        exists = directory.exists()
    except OSError as exc:
        raise ConfigError(
            str(directory),
            None,
            f"tariff directory cannot be read ({exc.strerror or type(exc).__name__})",
            "pass a directory readable by the user running the rater",
        ) from None
    if exists:
        raise ConfigError(
            str(directory),
            None,
            "is a file, not a tariff directory",
            "pass the directory holding plans.yaml, rates.csv and tenants.csv",
        )
    raise ConfigError(
        str(directory),
        None,
        "tariff directory not found",
        "pass the directory holding plans.yaml",
    )
