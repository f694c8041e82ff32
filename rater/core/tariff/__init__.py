"""The tariff as the pure core holds it: plans, tenants, rates and their lookup tables.

- :mod:`~rater.core.tariff.model`: the validated models and the :class:`Tariff` itself;
- :mod:`~rater.core.tariff.rate_index`: rule 7's rate selection as array lookups;
- :mod:`~rater.core.tariff.build`: from validated rows to a :class:`Tariff`.

Reading plans.yaml, rates.csv and tenants.csv is :mod:`rater.tariff_files`' job: this
package may import Polars, pydantic and the rest of :mod:`rater.core` only.
"""

from rater.core.tariff.build import band_week_table, build_tariff
from rater.core.tariff.model import (
    DEFAULT_MAX_CALL_SECONDS,
    DIRECTION_CODE,
    DIRECTIONS,
    GROUPS_PER_PLAN,
    KIND_CODE,
    KINDS,
    MAX_PREFIX_DIGITS,
    OPEN_END_US,
    Allowance,
    Band,
    Plan,
    Product,
    SubscriptionChange,
    Tariff,
    Tenant,
)
from rater.core.tariff.rate_index import RateIndex

__all__ = [
    "DEFAULT_MAX_CALL_SECONDS",
    "DIRECTIONS",
    "DIRECTION_CODE",
    "GROUPS_PER_PLAN",
    "KINDS",
    "KIND_CODE",
    "MAX_PREFIX_DIGITS",
    "OPEN_END_US",
    "Allowance",
    "Band",
    "Plan",
    "Product",
    "RateIndex",
    "SubscriptionChange",
    "Tariff",
    "Tenant",
    "band_week_table",
    "build_tariff",
]
