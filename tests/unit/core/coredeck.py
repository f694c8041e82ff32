"""Small hand-made tariffs and CDR builders shared by the core unit tests."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path

from tests import builders

PLANS = """\
plans:
  - id: pro
    currency: EUR
    timezone: Europe/Paris
    decimals: 4
    rounding: half_up
    fallback: base
    bands:
      - {name: peak, days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00"}
      - {name: offpeak, days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "24:00"}
    allowances:
      - {kind: call, direction: outbound, prefixes: ["33"], seconds: 120}
      - {kind: sms, direction: any, prefixes: [], segments: 2}
  - id: base
    currency: EUR
    timezone: America/New_York
    decimals: 2
    rounding: up
    bands:
      - {name: day, days: [mon, tue, wed, thu, fri, sat, sun], from: "07:00", to: "19:00"}
"""
RATES = """\
plan_id,kind,direction,prefix,band,effective_from,effective_to,connect_fee,price,first_increment,increment,min_charge
pro,call,outbound,33,peak,2025-01-01T00:00:00+01:00,,0.01,0.0123456789,30,6,
pro,call,outbound,33,any,2025-01-01T00:00:00+01:00,,0,0.01,60,60,0.02
pro,call,outbound,336,any,2025-01-01T00:00:00+01:00,2025-03-10T00:00:00+01:00,0,0.30,1,1,
pro,call,outbound,336,any,2025-03-10T00:00:00+01:00,,0,0.60,1,1,
pro,sms,outbound,33,any,2025-01-01T00:00:00+01:00,,,0.07,,,
pro,ring_through,inbound,,any,2025-01-01T00:00:00+01:00,,,0.001,,,
base,call,outbound,,any,2025-01-01T00:00:00Z,,0,1,1,1,
base,call,outbound,44,day,2025-01-01T00:00:00Z,,0,2,1,1,
"""
TENANTS = """\
tenant_id,plan_id,billing,opening_balance,low_balance_threshold,recharge_amount,auto_recharge
pre,pro,prepaid,1.00,0.5,10,true
post,pro,postpaid,,,,false
b,base,prepaid,0.05,0.02,5,false
"""


def write_tariff(
    directory: Path, plans: str = PLANS, rates: str = RATES, tenants: str = TENANTS
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plans.yaml").write_text(plans)
    (directory / "rates.csv").write_text(rates)
    (directory / "tenants.csv").write_text(tenants)
    return directory


def at(day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    """A UTC instant in March 2025 (2025-03-03 is a Monday)."""
    return datetime(2025, 3, day, hour, minute, second, micro, tzinfo=UTC)


# The core suites' CDR: tenant "pre", a French number, Monday 2025-03-03 09:00 UTC; hold
# and segments left null (the core reads them as 0 and 1).
cdr = functools.partial(
    builders.cdr, tenant="pre", callee="+33123", start=at(3, 9), hold_ms=None, segments=None
)


frame = builders.cdr_frame
