"""Billing (the contract's part 2): subscriptions, usage, credits and tax into invoices.

:func:`bill_period` (:mod:`~rater.core.billing.invoices`) runs the rules as named stages,
one module each: accounts and periods (rule 1), products (rules 2 to 5), usage (6),
credits (7), then order, totals and prepaid debits (8, 9). :func:`usage_so_far` is the
open period seen from inside. Pure: Polars, the standard library and :mod:`rater.core`.
"""

from rater.core.billing.invoices import Bill, bill_period, debit_id
from rater.core.billing.lines import INVOICE_SCHEMA, LINE_SCHEMA, LINE_TYPES, micro_units_text
from rater.core.billing.period import Period, parse_period
from rater.core.billing.so_far import AllowanceUse, SeatUse, UsageSoFar, usage_so_far
from rater.core.billing.usage import USAGE_COLUMNS

__all__ = [
    "INVOICE_SCHEMA",
    "LINE_SCHEMA",
    "LINE_TYPES",
    "USAGE_COLUMNS",
    "AllowanceUse",
    "Bill",
    "Period",
    "SeatUse",
    "UsageSoFar",
    "bill_period",
    "debit_id",
    "micro_units_text",
    "parse_period",
    "usage_so_far",
]
