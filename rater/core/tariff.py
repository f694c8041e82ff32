"""The tariff: plans (plans.yaml), rates (rates.csv) and tenants (tenants.csv).

:func:`load_tariff` validates the whole directory up front, so that a bad file
stops the rater with a message naming the file, the line and the fix, instead
of mis-rating traffic later. It also precomputes the integer-keyed lookup
tables the vectorized rating engine (:mod:`rater.core.rating`) joins against.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rater.core.bands import DAYS, MINUTES_PER_WEEK, band_week_table, parse_hhmm
from rater.core.money import (
    MAX_CHARGE_MICROS,
    MICROS,
    decimal_places,
    decimal_to_micros,
    parse_decimal,
)
from rater.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_CALL_SECONDS",
    "DIRECTIONS",
    "KINDS",
    "MAX_CALL_SECONDS_LIMIT",
    "MAX_PREFIX_DIGITS",
    "OPEN_END_US",
    "Allowance",
    "Band",
    "Plan",
    "Tariff",
    "Tenant",
    "load_tariff",
]

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("call", "sms", "ring_through")
DIRECTIONS: tuple[str, ...] = ("inbound", "outbound")
# E.164 numbers have at most 15 digits, so a longer prefix could never match; the bound
# also lets a (plan, kind, direction, prefix) key be packed into one int64.
MAX_PREFIX_DIGITS = 15
OPEN_END_US = 2**62  # an open effective_to, as microseconds since the epoch

# Rule 1: a call longer than max_call_seconds (a top-level key of plans.yaml) is invalid.
DEFAULT_MAX_CALL_SECONDS = 86_400
# Valid times lie in [2000-01-01, 2100-01-01): no valid call can last longer than that.
MAX_CALL_SECONDS_LIMIT = 36_525 * 86_400
# Amounts in rates.csv: at most this many digits before and after the point, so that
# every exact numerator over 10**price_scale fits an Int128 (and a 28-digit Decimal).
MAX_AMOUNT_WHOLE_DIGITS = 12
MAX_AMOUNT_DECIMALS = 15
# Balances and thresholds in tenants.csv: under 10**12 currency units (Int64 micros).
MAX_BALANCE_MICROS = 10**18 - 1
# Call increments: whole seconds, at most a day.
MAX_INCREMENT_SECONDS = 86_400
# Allowance quantities (seconds or segments a month): far beyond any real bundle,
# well within the Int64 sums of the rating engine.
MAX_ALLOWANCE_QUANTITY = 10**12
# Longest text quoted back in an error message.
_SHOWN_CHARS = 40
# Byte order marks of encodings a spreadsheet may save instead of UTF-8.
_FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)

PLANS_FILE = "plans.yaml"
RATES_FILE = "rates.csv"
TENANTS_FILE = "tenants.csv"

RATE_COLUMNS = (
    "plan_id",
    "kind",
    "direction",
    "prefix",
    "band",
    "effective_from",
    "effective_to",
    "connect_fee",
    "price",
    "first_increment",
    "increment",
    "min_charge",
)
TENANT_COLUMNS = (
    "tenant_id",
    "plan_id",
    "billing",
    "opening_balance",
    "low_balance_threshold",
    "recharge_amount",
    "auto_recharge",
)
_DIGITS = re.compile(r"[0-9]*")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Band(_Model):
    """A named time band. ``to_minute`` 1440 means end of day ("24:00").

    When ``from_minute`` > ``to_minute`` the band wraps past midnight on the same
    listed days: it contains times >= from or < to.
    """

    name: str
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...]
    from_minute: int = Field(ge=0, le=1439)
    to_minute: int = Field(ge=1, le=1440)


class Allowance(_Model):
    """Free quantity per calendar month: ``seconds`` for calls, ``segments`` for sms."""

    kind: Literal["call", "sms"]
    direction: Literal["inbound", "outbound", "any"]
    prefixes: tuple[str, ...] = ()
    seconds: int | None = Field(default=None, ge=0, le=MAX_ALLOWANCE_QUANTITY)
    segments: int | None = Field(default=None, ge=0, le=MAX_ALLOWANCE_QUANTITY)

    @property
    def quantity(self) -> int:
        value = self.seconds if self.kind == "call" else self.segments
        return 0 if value is None else value


class Plan(_Model):
    id: str
    currency: str
    timezone: str
    decimals: int = Field(default=6, ge=0, le=6)
    rounding: Literal["half_up", "up", "down"] = "half_up"
    fallback: str | None = None
    bands: tuple[Band, ...] = ()
    allowances: tuple[Allowance, ...] = ()


class Tenant(_Model):
    tenant_id: str
    plan_id: str
    billing: Literal["prepaid", "postpaid"]
    opening_balance_micros: int = 0
    low_balance_threshold_micros: int = 0
    recharge_amount_micros: int = 0
    auto_recharge: bool = False


_PAD = 10**MAX_PREFIX_DIGITS
# Above this many entries the band/date table is kept as searched segments instead.
DENSE_INDEX_LIMIT = 1 << 23


@dataclass(frozen=True)
class RateIndex:
    """Rate selection (longest prefix, band, dates, tie-breaks) as two array lookups.

    Prefixes: a rate prefix of a (plan, kind, direction) group is the interval of
    keys ``group * 10**15 + callee digits padded with zeros to 15`` that start with
    it. The nested intervals of the deck are flattened into disjoint ones, each
    naming the longest prefix ("node") covering it, so one search in ``starts``
    gives ``nodes``, the longest prefix of a callee. A callee shorter than that
    prefix only met it through its zero padding; its ``parent`` chain (the longest
    shorter prefix in the group) leads to the longest one no longer than the callee.

    Bands and dates: the deck's distinct effective dates (``boundaries``) cut time
    into ``epochs`` (the epoch of t is the number of boundaries <= t), in which the
    set of valid rows is constant. For every node, band slot (0 = no band, b + 1 =
    band b; ``slots`` per node) and epoch, the table names the row rule 7 selects
    among the rows of the node and of its shorter prefixes (longest valid prefix
    applicable to the band, then a named band over ``any``, then the latest
    effective_from), or -1 when none applies and the fallback plan is next. It is
    ``dense`` (indexed by (node * slots + slot) * epochs + epoch) when small
    enough, else segments: sorted ``keys`` (the same index at each segment start)
    and their ``rows``.
    """

    starts: pl.Series
    nodes: pl.Series
    node_length: pl.Series
    parent: pl.Series
    boundaries: pl.Series
    slots: int
    epochs: int
    dense: pl.Series | None
    keys: pl.Series
    rows: pl.Series


def _empty_index() -> RateIndex:
    return RateIndex(
        starts=pl.Series([-1], dtype=pl.Int64),
        nodes=pl.Series([-1], dtype=pl.Int32),
        node_length=pl.Series([], dtype=pl.Int64),
        parent=pl.Series([], dtype=pl.Int32),
        boundaries=pl.Series([], dtype=pl.Int64),
        slots=1,
        epochs=1,
        dense=pl.Series([], dtype=pl.Int32),
        keys=pl.Series([], dtype=pl.Int64),
        rows=pl.Series([], dtype=pl.Int32),
    )


def _flatten_prefixes(
    groups: list[int], prefixes: list[str]
) -> tuple[list[int], list[int], list[int]]:
    """Parents of the nodes, and disjoint interval starts with the deepest node of each."""
    node_of = {(g, p): i for i, (g, p) in enumerate(zip(groups, prefixes, strict=True))}
    parent: list[int] = []
    for g, p in zip(groups, prefixes, strict=True):
        found = -1
        for length in range(len(p) - 1, -1, -1):
            found = node_of.get((g, p[:length]), -1)
            if found >= 0:
                break
        parent.append(found)
    lo = [
        g * _PAD + (int(p) * 10 ** (MAX_PREFIX_DIGITS - len(p)) if p else 0)
        for g, p in zip(groups, prefixes, strict=True)
    ]
    hi = [low + 10 ** (MAX_PREFIX_DIGITS - len(p)) for low, p in zip(lo, prefixes, strict=True)]
    # A sweep over the laminar family: at every start or end of an interval, the
    # deepest open interval covers what follows (a later entry at the same key wins).
    covering: dict[int, int] = {-1: -1}
    stack: list[int] = []

    def close(upto: int | None) -> None:
        while stack and (upto is None or hi[stack[-1]] <= upto):
            end = hi[stack.pop()]
            covering[end] = stack[-1] if stack else -1

    for node in sorted(range(len(lo)), key=lambda i: (lo[i], len(prefixes[i]))):
        close(lo[node])
        stack.append(node)
        covering[lo[node]] = node
    close(None)
    starts = sorted(covering)
    return parent, starts, [covering[k] for k in starts]


def _rate_index(
    keyed: pl.DataFrame, band_counts: list[int], *, dense_limit: int = DENSE_INDEX_LIMIT
) -> RateIndex:
    """Build the :class:`RateIndex` of ``keyed`` (r_idx, group, prefix, r_band, r_from, r_to, plan)."""
    if keyed.height == 0:
        return _empty_index()
    nodes = keyed.select("group", "prefix").unique().sort("group", "prefix")
    groups, prefixes = nodes["group"].to_list(), nodes["prefix"].to_list()
    parent, starts, covering = _flatten_prefixes(groups, prefixes)
    count = nodes.height
    nodes = nodes.with_row_index("node").with_columns(pl.col("node").cast(pl.Int64))
    rows = keyed.join(nodes, on=["group", "prefix"], how="inner").select(
        pl.col("node").alias("anc"),
        "r_idx",
        pl.col("prefix").str.len_bytes().cast(pl.Int64).alias("length"),
        "r_band",
        "r_from",
        "r_to",
        "plan",
    )
    boundaries = (
        pl.concat([rows["r_from"], rows["r_to"].filter(rows["r_to"] != OPEN_END_US)])
        .unique()
        .sort()
        .alias("b")
    )
    epochs = boundaries.len() + 1
    rows = rows.with_columns(
        pl.lit(boundaries)
        .search_sorted(pl.col("r_from"), side="right")
        .cast(pl.Int64)
        .alias("e_from"),
        pl.when(pl.col("r_to") == OPEN_END_US)
        .then(pl.lit(epochs, dtype=pl.Int64))
        .otherwise(pl.lit(boundaries).search_sorted(pl.col("r_to"), side="right").cast(pl.Int64))
        .alias("e_to"),
    )
    parents = pl.Series("p", parent, dtype=pl.Int64)
    link = pl.DataFrame({"node": pl.int_range(count, eager=True, dtype=pl.Int64)}).with_columns(
        pl.col("node").alias("anc")
    )
    chain = [link]
    while link.height:
        link = link.with_columns(pl.lit(parents).gather(pl.col("anc")).alias("anc")).filter(
            pl.col("anc") >= 0
        )
        chain.append(link)
    candidates = pl.concat(chain).join(rows, on="anc", how="inner")
    slots = 1 + max(band_counts, default=0)
    slot_frame = pl.DataFrame({"slot": pl.int_range(slots, eager=True, dtype=pl.Int64)})
    counts = pl.Series(band_counts, dtype=pl.Int64)
    candidates = pl.concat(
        [
            candidates.filter(pl.col("r_band") >= 0).with_columns(
                (pl.col("r_band").cast(pl.Int64) + 1).alias("slot")
            ),
            candidates.filter(pl.col("r_band") < 0)
            .join(slot_frame, how="cross")
            .filter(pl.col("slot") <= pl.lit(counts).gather(pl.col("plan"))),
        ]
    ).select(
        (pl.col("node") * slots + pl.col("slot")).alias("cell"),
        "r_idx",
        "length",
        "r_band",
        "r_from",
        "e_from",
        "e_to",
    )
    # Segment starts of every cell: the epochs where one of its rows starts or ends.
    cell = pl.col("cell") * epochs
    point_keys = (
        pl.concat(
            [
                candidates.select((cell + pl.col("e_from")).alias("key")),
                candidates.filter(pl.col("e_to") < epochs).select(
                    (cell + pl.col("e_to")).alias("key")
                ),
                candidates.select(cell.alias("key")),
            ]
        )["key"]
        .unique()
        .sort()
    )
    points = pl.DataFrame({"key": point_keys}).with_columns(
        (pl.col("key") // epochs).alias("cell"), (pl.col("key") % epochs).alias("e")
    )
    best = (
        points.join(candidates, on="cell", how="inner")
        .filter((pl.col("e_from") <= pl.col("e")) & (pl.col("e") < pl.col("e_to")))
        .sort(["key", "length", "r_band", "r_from"], descending=[False, True, True, True])
        .unique("key", keep="first", maintain_order=True)
        .select("key", "r_idx")
    )
    segments = points.join(best, on="key", how="left", maintain_order="left").with_columns(
        pl.col("r_idx").fill_null(-1).cast(pl.Int32)
    )
    size = count * slots * epochs
    dense: pl.Series | None = None
    if size <= dense_limit:
        end = (
            pl.when(pl.col("cell").shift(-1) == pl.col("cell"))
            .then(pl.col("key").shift(-1))
            .otherwise(pl.col("cell") * epochs + epochs)
        )
        filled = segments.select(pl.int_ranges(pl.col("key"), end).alias("at"), "r_idx").explode(
            "at", empty_as_null=False
        )
        dense = pl.repeat(-1, size, dtype=pl.Int32, eager=True)
        dense.scatter(filled["at"], filled["r_idx"])
    return RateIndex(
        starts=pl.Series("starts", starts, dtype=pl.Int64),
        nodes=pl.Series("nodes", covering, dtype=pl.Int32),
        node_length=nodes["prefix"].str.len_bytes().cast(pl.Int64),
        parent=pl.Series("parent", parent, dtype=pl.Int32),
        boundaries=boundaries,
        slots=slots,
        epochs=epochs,
        dense=dense,
        keys=segments["key"],
        rows=segments["r_idx"],
    )


@dataclass(frozen=True)
class Tariff:
    """A loaded, validated tariff plus the lookup tables the engine joins against.

    ``rates`` holds one row per rates.csv row with the original decimal strings
    and exact integer numerators over ``10**price_scale`` (``connect_num``,
    ``price_num``, ``min_num``, Int128), effective dates as UTC datetimes and
    ``line`` (the CSV line).
    """

    plans: dict[str, Plan]
    tenants: dict[str, Tenant]
    rates: pl.DataFrame
    price_scale: int
    plan_ids: tuple[str, ...] = ()
    # Index of each plan's fallback in plan_ids, -1 for none.
    fallback_index: tuple[int, ...] = ()
    timezones: tuple[str, ...] = ()
    plan_timezone_index: tuple[int, ...] = ()
    # Band code per (plan, minute of the local week): plan * MINUTES_PER_WEEK + minute.
    band_table: pl.Series = field(default_factory=lambda: pl.Series(dtype=pl.Int16))
    # Longest-prefix rate selection tables; see :class:`RateIndex`.
    rate_index: RateIndex = field(default_factory=lambda: _empty_index())
    tenant_frame: pl.DataFrame = field(default_factory=pl.DataFrame)
    max_price_num: int = 0
    # Rule 1: a call whose end_time - start_time exceeds this is invalid (bad_times).
    max_call_seconds: int = DEFAULT_MAX_CALL_SECONDS

    def plan_index(self, plan_id: str) -> int:
        return self.plan_ids.index(plan_id)


# ---------------------------------------------------------------------------------------
# File text: UTF-8, a leading byte order mark ignored


def _shown(value: object) -> str:
    """``repr(value)``, cut short so that an error message stays one readable line."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _label(value: object) -> str:
    """``str(value)`` when short and printable, else :func:`_shown`."""
    text = str(value)
    return text if text.isprintable() and len(text) <= _SHOWN_CHARS else _shown(value)


def _read_text(path: Path) -> str:
    """The text of a tariff file; ConfigError when it is missing, unreadable or not UTF-8."""
    return _decode_utf8(_read_bytes(path), str(path))


def _read_bytes(path: Path) -> bytes:
    file = str(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            file, None, "file not found", f"create {path.name} in the tariff directory"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            file,
            None,
            "is a directory, not a file",
            f"replace the directory with the {path.name} file",
        ) from None
    except OSError as exc:
        raise ConfigError(
            file,
            None,
            f"cannot be read ({exc.strerror or type(exc).__name__})",
            f"make {path.name} a regular file readable by the user running the rater",
        ) from None


def _decode_utf8(data: bytes, file: str) -> str:
    for bom, encoding in _FOREIGN_BOMS:
        if data.startswith(bom):
            raise ConfigError(file, 1, f"is {encoding} text, not UTF-8", "save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            file,
            line,
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded)",
            "save it as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


# ---------------------------------------------------------------------------------------
# plans.yaml


class _LineLoader(yaml.SafeLoader):
    """Records the 1-based line of every mapping under the key ``__line__``."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _parse_band(raw: Any, file: str, line: int) -> Band:
    if not isinstance(raw, dict):
        raise ConfigError(file, line, "a band must be a mapping", "write {name, days, from, to}")
    line = raw.get("__line__", line)
    for key in ("name", "days", "from", "to"):
        if key not in raw:
            raise ConfigError(file, line, f"band lacks {key!r}", "give name, days, from and to")
    start = parse_hhmm(str(raw["from"]), allow_end_of_day=False)
    end = parse_hhmm(str(raw["to"]), allow_end_of_day=True)
    if start is None or end is None:
        raise ConfigError(
            file,
            line,
            f"band {_shown(raw['name'])}: bad time {_shown(raw['from'])}..{_shown(raw['to'])}",
            'write times as "HH:MM" (00:00..23:59; "24:00" only as "to")',
        )
    if start == end:
        raise ConfigError(
            file,
            line,
            f"band {_shown(raw['name'])} is empty or ambiguous (from == to)",
            "use 00:00-24:00 for all day",
        )
    days = raw["days"]
    if not isinstance(days, list) or any(str(d).lower() not in DAYS for d in days):
        raise ConfigError(
            file,
            line,
            f"band {_shown(raw['name'])}: bad days {_shown(_strip_lines(days))}",
            f"use a list of {', '.join(DAYS)}",
        )
    return Band(
        name=str(raw["name"]),
        days=tuple(str(d).lower() for d in days),  # type: ignore[misc]
        from_minute=start,
        to_minute=end,
    )


def _parse_plan(raw: Any, file: str, index: int) -> Plan:
    if not isinstance(raw, dict):
        raise ConfigError(
            file, f"plans[{index}]", "a plan must be a mapping", "see the plans.yaml format"
        )
    line = raw.get("__line__", index)
    plan_id = raw.get("id")
    where = f"{line} (plan {_label(plan_id)})"
    if not plan_id:
        raise ConfigError(file, line, "plan without an id", "give every plan an id")
    tz = raw.get("timezone")
    try:
        if not isinstance(tz, str):
            raise ZoneInfoNotFoundError(str(tz))
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            file, where, f"unknown time zone {_shown(tz)}", "use an IANA name such as Europe/Paris"
        ) from None
    bands = raw.get("bands") or []
    allowances = raw.get("allowances") or []
    if not isinstance(bands, list) or not isinstance(allowances, list):
        raise ConfigError(
            file, where, "bands and allowances must be lists", "write them as YAML lists"
        )
    parsed_bands = tuple(_parse_band(b, file, line) for b in bands)
    names = [b.name for b in parsed_bands]
    if len(set(names)) != len(names) or "any" in names:
        raise ConfigError(file, where, "band names must be unique and not 'any'", "rename the band")
    parsed_allowances = []
    for a in allowances:
        a_line = a.get("__line__", line) if isinstance(a, dict) else line
        try:
            allowance = Allowance.model_validate(_strip_lines(a))
        except ValidationError as exc:
            raise ConfigError(
                file,
                a_line,
                f"plan {_label(plan_id)}: bad allowance: {_first_error(exc)}",
                _ALLOWANCE_FIX,
            ) from None
        wrong = allowance.segments if allowance.kind == "call" else allowance.seconds
        right = allowance.seconds if allowance.kind == "call" else allowance.segments
        if wrong is not None or right is None:
            raise ConfigError(
                file, a_line, f"plan {_label(plan_id)}: bad allowance quantity", _ALLOWANCE_FIX
            )
        if any(not p or not _DIGITS.fullmatch(p) for p in allowance.prefixes):
            raise ConfigError(
                file,
                a_line,
                f"plan {_label(plan_id)}: allowance prefixes must be digits",
                _ALLOWANCE_FIX,
            )
        parsed_allowances.append(allowance)
    fields = {k: v for k, v in _strip_lines(raw).items() if k not in ("bands", "allowances")}
    try:
        return Plan.model_validate(
            {**fields, "bands": parsed_bands, "allowances": tuple(parsed_allowances)}
        )
    except ValidationError as exc:
        raise ConfigError(
            file,
            where,
            f"bad plan: {_first_error(exc)}",
            "check currency, timezone, decimals (0..6), rounding (half_up|up|down), fallback",
        ) from None


_ALLOWANCE_FIX = (
    "write {kind: call, direction: inbound|outbound|any, prefixes: [...], seconds: N} "
    "or {kind: sms, ..., segments: N}"
)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])


@dataclass(frozen=True)
class _PlansFile:
    """What plans.yaml defines: the plans and the top-level options."""

    plans: dict[str, Plan]
    max_call_seconds: int = DEFAULT_MAX_CALL_SECONDS


def _load_plans(directory: Path) -> _PlansFile:
    path = directory / PLANS_FILE
    file = str(path)
    doc, root = _parse_yaml(_read_text(path), file)
    if not isinstance(doc, dict) or not isinstance(doc.get("plans"), list) or not doc["plans"]:
        raise ConfigError(
            file, 1, "no 'plans' list", "start the file with 'plans:' and a list of plans"
        )
    plans, lines = _parse_plans(doc["plans"], file)
    _check_fallbacks(plans, lines, file)
    return _PlansFile(plans, _parse_max_call_seconds(doc, root, file))


def _parse_yaml(text: str, file: str) -> tuple[Any, yaml.Node | None]:
    """The document of ``text`` and its root node (for the lines of top-level keys)."""
    loader = _LineLoader(text)
    try:
        root = loader.get_single_node()
        doc = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            file, line, f"invalid YAML: {_yaml_problem(exc)}", "fix the YAML syntax"
        ) from None
    except RecursionError:
        raise ConfigError(
            file, None, "invalid YAML: nested too deeply", "write plans as in the example"
        ) from None
    except ValueError as exc:  # a scalar the resolver typed but cannot build (2001-13-45)
        raise ConfigError(
            file, None, f"invalid YAML value: {_first_line(exc)}", "quote or fix the value"
        ) from None
    finally:
        loader.dispose()
    return doc, root


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The parser's complaint on one line, without the quoted excerpt of the file."""
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [exc.context, exc.problem]
        text = " ".join(str(p) for p in parts if p)
    else:
        text = str(exc)
    return " ".join(text.split()) or type(exc).__name__


def _parse_plans(raws: list[Any], file: str) -> tuple[dict[str, Plan], dict[str, Any]]:
    """Plans by id and the line of each."""
    plans: dict[str, Plan] = {}
    lines: dict[str, Any] = {}
    for i, raw in enumerate(raws):
        plan = _parse_plan(raw, file, i)
        line = raw.get("__line__")
        if plan.id in plans:
            raise ConfigError(
                file, line, f"duplicate plan id {_shown(plan.id)}", "give each plan a unique id"
            )
        plans[plan.id] = plan
        lines[plan.id] = line
    return plans, lines


def _check_fallbacks(plans: dict[str, Plan], lines: dict[str, Any], file: str) -> None:
    for plan in plans.values():
        where = f"{lines[plan.id]} (plan {plan.id})"
        if plan.fallback is None:
            continue
        target = plans.get(plan.fallback)
        if target is None:
            raise ConfigError(
                file,
                where,
                f"unknown fallback plan {_shown(plan.fallback)}",
                "name a plan defined in plans.yaml",
            )
        if target.currency != plan.currency:
            raise ConfigError(
                file,
                where,
                f"fallback plan {_shown(target.id)} is in {target.currency}, not {plan.currency}",
                "fall back only on a plan with the same currency",
            )
        chain = [plan.id]
        cursor: Plan | None = target
        while cursor is not None:
            if cursor.id in chain:
                raise ConfigError(
                    file,
                    where,
                    f"fallback cycle {' -> '.join([*chain, cursor.id])}",
                    "remove one fallback so that the chain ends",
                )
            if cursor.currency != plan.currency:
                raise ConfigError(
                    file,
                    where,
                    f"fallback plan {_shown(cursor.id)} is in {cursor.currency}, not {plan.currency}",
                    "fall back only on plans with the same currency",
                )
            chain.append(cursor.id)
            cursor = plans.get(cursor.fallback) if cursor.fallback else None


def _parse_max_call_seconds(doc: dict[Any, Any], root: yaml.Node | None, file: str) -> int:
    """The top-level ``max_call_seconds``: a whole number of seconds, default one day."""
    if "max_call_seconds" not in doc:
        return DEFAULT_MAX_CALL_SECONDS
    value = doc["max_call_seconds"]
    whole = isinstance(value, int) and not isinstance(value, bool)
    if whole and 1 <= value <= MAX_CALL_SECONDS_LIMIT:
        return int(value)
    raise ConfigError(
        file,
        _key_line(root, "max_call_seconds"),
        f"max_call_seconds {_shown(value)} is not a whole number of seconds "
        f"from 1 to {MAX_CALL_SECONDS_LIMIT} (100 years)",
        "write e.g. 'max_call_seconds: 86400' (one day), or remove it for that default",
    )


def _key_line(root: yaml.Node | None, key: str) -> int | None:
    """The 1-based line of the top-level ``key`` in the document ``root``."""
    if not isinstance(root, yaml.MappingNode):
        return None
    for key_node, value_node in root.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return int(value_node.start_mark.line) + 1
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# ---------------------------------------------------------------------------------------
# CSV files


def _read_csv(
    path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
) -> list[tuple[int, dict[str, str]]]:
    """(line, row) of every non-blank data line; line 1 is the header."""
    file = str(path)
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise ConfigError(file, 1, "empty file", f"write the header: {','.join(columns)}")
        header = [h.strip() for h in header]
        _check_header(header, columns, optional, file)
        return _read_rows(reader, header, file)
    except csv.Error as exc:
        raise ConfigError(
            file,
            reader.line_num,
            f"unreadable CSV ({_first_line(exc)})",
            "close every quote on its line and keep fields under 128 KiB",
        ) from None


def _check_header(
    header: list[str], columns: tuple[str, ...], optional: tuple[str, ...], file: str
) -> None:
    missing = [c for c in columns if c not in header and c not in optional]
    if missing:
        raise ConfigError(
            file,
            1,
            f"missing column(s) {', '.join(missing)}",
            f"the header must have {','.join(columns)}",
        )


def _read_rows(reader: Any, header: list[str], file: str) -> list[tuple[int, dict[str, str]]]:
    rows: list[tuple[int, dict[str, str]]] = []
    for record in reader:
        if not record or all(not cell.strip() for cell in record):
            continue
        line = reader.line_num
        if len(record) != len(header):
            raise ConfigError(
                file,
                line,
                f"{len(record)} fields, expected {len(header)}",
                "match the header's columns",
            )
        rows.append((line, {h: v.strip() for h, v in zip(header, record, strict=True)}))
    return rows


def _parse_instant(text: str, file: str, line: int, column: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(
            file,
            line,
            f"column {column!r}: {_shown(text)} is not an ISO-8601 timestamp with offset",
            "write e.g. 2025-01-01T00:00:00+01:00 (or ...Z)",
        )
    return value


def _epoch_us(value: datetime) -> int:
    delta = value - datetime.fromisoformat("1970-01-01T00:00:00+00:00")
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _parse_int(
    text: str,
    file: str,
    line: int,
    column: str,
    *,
    minimum: int,
    maximum: int = MAX_INCREMENT_SECONDS,
) -> int:
    # At most 9 digits: never more than int() reads from text, always within maximum's reach.
    if not re.fullmatch(r"[0-9]{1,9}", text) or not minimum <= int(text) <= maximum:
        raise ConfigError(
            file,
            line,
            f"column {column!r}: {_shown(text)} is not an integer from {minimum} to {maximum}",
            f"write whole seconds from {minimum} to {maximum}",
        )
    return int(text)


def _parse_amount(text: str, file: str, line: int, column: str) -> Decimal:
    """A price or fee of rates.csv: a plain decimal within the deck's digit limits."""
    if len(text) > 2 * (MAX_AMOUNT_WHOLE_DIGITS + MAX_AMOUNT_DECIMALS):
        raise _amount_too_long(text, file, line, column)
    value = parse_decimal(text, file=file, line=line, column=column)
    whole, _, fraction = text.strip().lstrip("+-").partition(".")
    if (
        len(whole.lstrip("0")) > MAX_AMOUNT_WHOLE_DIGITS
        or len(fraction.rstrip("0")) > MAX_AMOUNT_DECIMALS
    ):
        raise _amount_too_long(text, file, line, column)
    return value


def _amount_too_long(text: str, file: str, line: int, column: str) -> ConfigError:
    return ConfigError(
        file,
        line,
        f"column {column!r}: {_shown(text)} has too many digits",
        f"write at most {MAX_AMOUNT_WHOLE_DIGITS} digits before the point "
        f"and {MAX_AMOUNT_DECIMALS} after it",
    )


def _load_rates(directory: Path, plans: dict[str, Plan]) -> tuple[pl.DataFrame, int]:
    path = directory / RATES_FILE
    file = str(path)
    rows = _read_csv(path, RATE_COLUMNS, optional=("min_charge", "connect_fee", "effective_to"))
    records: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str, str, str, int], int] = {}
    scale = 0
    for line, row in rows:
        plan_id = row["plan_id"]
        plan = plans.get(plan_id)
        if plan is None:
            raise ConfigError(
                file, line, f"unknown plan {_shown(plan_id)}", "use a plan id defined in plans.yaml"
            )
        kind, direction = row["kind"], row["direction"]
        if kind not in KINDS:
            raise ConfigError(
                file, line, f"unknown kind {_shown(kind)}", "use call, sms or ring_through"
            )
        if direction not in DIRECTIONS:
            raise ConfigError(
                file, line, f"unknown direction {_shown(direction)}", "use inbound or outbound"
            )
        prefix = row["prefix"]
        if not _DIGITS.fullmatch(prefix) or len(prefix) > MAX_PREFIX_DIGITS:
            raise ConfigError(
                file,
                line,
                f"prefix {_shown(prefix)} is not up to {MAX_PREFIX_DIGITS} digits",
                "write digits only, no '+'",
            )
        band = row["band"]
        if band != "any" and band not in {b.name for b in plan.bands}:
            raise ConfigError(
                file,
                line,
                f"band {_shown(band)} is not a band of plan {plan_id}",
                "use 'any' or a band name of the plan",
            )
        eff_from = _parse_instant(row["effective_from"], file, line, "effective_from")
        eff_to_text = row.get("effective_to", "")
        eff_to = _parse_instant(eff_to_text, file, line, "effective_to") if eff_to_text else None
        from_us = _epoch_us(eff_from)
        to_us = _epoch_us(eff_to) if eff_to is not None else OPEN_END_US
        if to_us <= from_us:
            raise ConfigError(
                file, line, "effective_to is not after effective_from", "swap or fix the dates"
            )
        values: dict[str, Decimal] = {}
        for column in ("connect_fee", "price", "min_charge"):
            text = row.get(column, "")
            if text == "" and column != "price":
                value = Decimal(0)
            else:
                value = _parse_amount(text, file, line, column)
            if value < 0:
                raise ConfigError(
                    file, line, f"column {column!r} is negative", "prices and fees must be >= 0"
                )
            values[column] = value
            scale = max(scale, decimal_places(value))
        if kind == "call":
            first = _parse_int(row["first_increment"], file, line, "first_increment", minimum=1)
            inc = _parse_int(row["increment"], file, line, "increment", minimum=1)
        else:
            first = (
                _parse_int(row["first_increment"], file, line, "first_increment", minimum=1)
                if row["first_increment"]
                else 1
            )
            inc = (
                _parse_int(row["increment"], file, line, "increment", minimum=1)
                if row["increment"]
                else 1
            )
        key = (plan_id, kind, direction, prefix, band, from_us)
        if key in seen:
            raise ConfigError(
                file,
                line,
                f"duplicate rate key (plan_id, kind, direction, prefix, band, effective_from) of line {seen[key]}",
                "remove one row or change its effective_from",
            )
        seen[key] = line
        records.append(
            {
                "plan_id": plan_id,
                "kind": kind,
                "direction": direction,
                "prefix": prefix,
                "band": band,
                "effective_from": from_us,
                "effective_to": None if eff_to is None else to_us,
                "connect_fee": row.get("connect_fee", ""),
                "price": row["price"],
                "first_increment": first,
                "increment": inc,
                "min_charge": row.get("min_charge", ""),
                "line": line,
                "_values": values,
            }
        )
    factor = 10**scale
    nums: dict[str, list[int]] = {"connect_num": [], "price_num": [], "min_num": []}
    for rec in records:
        values = rec.pop("_values")
        nums["connect_num"].append(int(values["connect_fee"] * factor))
        nums["price_num"].append(int(values["price"] * factor))
        nums["min_num"].append(int(values["min_charge"] * factor))
    schema = {
        "plan_id": pl.String,
        "kind": pl.String,
        "direction": pl.String,
        "prefix": pl.String,
        "band": pl.String,
        "effective_from": pl.Int64,
        "effective_to": pl.Int64,
        "connect_fee": pl.String,
        "price": pl.String,
        "first_increment": pl.Int64,
        "increment": pl.Int64,
        "min_charge": pl.String,
        "line": pl.Int64,
    }
    frame = (
        pl.DataFrame(records, schema=schema, orient="row")
        if records
        else pl.DataFrame(schema=schema)
    )
    frame = frame.with_columns(
        pl.col("effective_from").cast(pl.Datetime("us", "UTC")),
        pl.col("effective_to").cast(pl.Datetime("us", "UTC")),
        *(pl.Series(name, values, dtype=pl.Int128) for name, values in nums.items()),
    )
    return frame, scale


def _load_tenants(directory: Path, plans: dict[str, Plan]) -> dict[str, Tenant]:
    path = directory / TENANTS_FILE
    file = str(path)
    rows = _read_csv(path, TENANT_COLUMNS)
    tenants: dict[str, Tenant] = {}
    for line, row in rows:
        tenant_id = row["tenant_id"]
        if not tenant_id:
            raise ConfigError(file, line, "empty tenant_id", "give every tenant an id")
        if tenant_id in tenants:
            raise ConfigError(
                file, line, f"duplicate tenant {_shown(tenant_id)}", "list each tenant once"
            )
        if row["plan_id"] not in plans:
            raise ConfigError(
                file,
                line,
                f"unknown plan {_shown(row['plan_id'])}",
                "use a plan id defined in plans.yaml",
            )
        billing = row["billing"]
        if billing not in ("prepaid", "postpaid"):
            raise ConfigError(
                file, line, f"unknown billing {_shown(billing)}", "use prepaid or postpaid"
            )
        amounts = {
            column: _parse_balance(row[column], file, line, column)
            for column in ("opening_balance", "low_balance_threshold", "recharge_amount")
        }
        auto = row["auto_recharge"].lower()
        if auto not in ("true", "false", ""):
            raise ConfigError(
                file, line, f"auto_recharge {_shown(row['auto_recharge'])}", "write true or false"
            )
        tenants[tenant_id] = Tenant(
            tenant_id=tenant_id,
            plan_id=row["plan_id"],
            billing=billing,  # type: ignore[arg-type]
            opening_balance_micros=amounts["opening_balance"],
            low_balance_threshold_micros=amounts["low_balance_threshold"],
            recharge_amount_micros=amounts["recharge_amount"],
            auto_recharge=auto == "true",
        )
    return tenants


def _parse_balance(text: str, file: str, line: int, column: str) -> int:
    """An amount of tenants.csv in exact micros (empty = 0)."""
    if text == "":
        return 0
    whole_digits = len(str(MAX_BALANCE_MICROS)) - 6
    if len(text) > 2 * len(str(MAX_BALANCE_MICROS)):
        raise ConfigError(
            file,
            line,
            f"column {column!r}: {_shown(text)} has too many digits",
            f"write at most {whole_digits} digits before the point and 6 after it",
        )
    value = parse_decimal(text, file=file, line=line, column=column)
    try:
        micros = decimal_to_micros(value)
    except ValueError:
        raise ConfigError(
            file,
            line,
            f"column {column!r}: {_shown(text)} has more than 6 decimals",
            "round it to micros",
        ) from None
    if abs(micros) > MAX_BALANCE_MICROS:
        raise ConfigError(
            file,
            line,
            f"column {column!r}: {_shown(text)} is too large",
            f"write at most {whole_digits} digits before the point",
        )
    return micros


# ---------------------------------------------------------------------------------------
# Precomputed tables

KIND_CODE = {k: i for i, k in enumerate(KINDS)}
DIRECTION_CODE = {d: i for i, d in enumerate(DIRECTIONS)}
GROUPS_PER_PLAN = len(KINDS) * len(DIRECTIONS)
# key = group * 10**length + prefix value must fit in int64 for every length.
MAX_PLANS = (2**63 - 1) // (10**MAX_PREFIX_DIGITS) // GROUPS_PER_PLAN


def _build(
    plans: dict[str, Plan],
    tenants: dict[str, Tenant],
    rates: pl.DataFrame,
    scale: int,
    *,
    dense_limit: int = DENSE_INDEX_LIMIT,
    max_call_seconds: int = DEFAULT_MAX_CALL_SECONDS,
) -> Tariff:
    plan_ids = tuple(plans)
    if len(plan_ids) > MAX_PLANS:
        raise ConfigError(PLANS_FILE, None, f"more than {MAX_PLANS} plans", "merge plans")
    index = {p: i for i, p in enumerate(plan_ids)}
    timezones = tuple(dict.fromkeys(p.timezone for p in plans.values()))
    tz_index = tuple(timezones.index(plans[p].timezone) for p in plan_ids)
    fallback = tuple(index[plans[p].fallback] if plans[p].fallback else -1 for p in plan_ids)  # type: ignore[index]
    band_table = pl.concat([band_week_table(plans[p].bands) for p in plan_ids])

    band_codes = pl.DataFrame(
        [(p, b.name, i) for p in plan_ids for i, b in enumerate(plans[p].bands)],
        schema={"plan_id": pl.String, "band": pl.String, "r_band": pl.Int32},
        orient="row",
    )
    keyed = (
        rates.with_row_index("r_idx")
        .join(band_codes, on=["plan_id", "band"], how="left", maintain_order="left")
        .select(
            pl.col("r_idx").cast(pl.Int32),
            (
                pl.col("plan_id").replace_strict(index, return_dtype=pl.Int64) * GROUPS_PER_PLAN
                + pl.col("kind").replace_strict(KIND_CODE, return_dtype=pl.Int64) * len(DIRECTIONS)
                + pl.col("direction").replace_strict(DIRECTION_CODE, return_dtype=pl.Int64)
            ).alias("group"),
            "prefix",
            pl.col("r_band").fill_null(-1),
            pl.col("effective_from").cast(pl.Int64).alias("r_from"),
            pl.col("effective_to").cast(pl.Int64).fill_null(OPEN_END_US).alias("r_to"),
            pl.col("plan_id").replace_strict(index, return_dtype=pl.Int64).alias("plan"),
        )
    )
    rate_index = _rate_index(
        keyed, [len(plans[p].bands) for p in plan_ids], dense_limit=dense_limit
    )

    tenant_rows = [
        {
            "tenant_id": t.tenant_id,
            "_plan": index[t.plan_id],
            "_prepaid": t.billing == "prepaid",
            "_opening": t.opening_balance_micros,
            "_threshold": t.low_balance_threshold_micros,
            "_recharge": t.recharge_amount_micros,
            "_auto": t.auto_recharge,
        }
        for t in tenants.values()
    ]
    tenant_schema = {
        "tenant_id": pl.String,
        "_plan": pl.Int32,
        "_prepaid": pl.Boolean,
        "_opening": pl.Int64,
        "_threshold": pl.Int64,
        "_recharge": pl.Int64,
        "_auto": pl.Boolean,
    }
    tenant_frame = pl.DataFrame(tenant_rows, schema=tenant_schema)
    max_num = 0
    if rates.height:
        for column in ("connect_num", "price_num", "min_num"):
            value = rates[column].max()
            assert isinstance(value, int)
            max_num = max(max_num, value)
    return Tariff(
        plans=plans,
        tenants=tenants,
        rates=rates,
        price_scale=scale,
        plan_ids=plan_ids,
        fallback_index=fallback,
        timezones=timezones,
        plan_timezone_index=tz_index,
        band_table=band_table,
        rate_index=rate_index,
        tenant_frame=tenant_frame,
        max_price_num=max_num,
        max_call_seconds=max_call_seconds,
    )


def load_tariff(directory: Path) -> Tariff:
    """Read and validate plans.yaml, rates.csv and tenants.csv from ``directory``.

    Raises ConfigError(file, line, problem, fix) on the first problem found.
    """
    directory = Path(directory)
    _check_directory(directory)
    plans_file = _load_plans(directory)
    plans = plans_file.plans
    rates, scale = _load_rates(directory, plans)
    if rates.height == 0:
        log.warning("%s has no rates: every CDR will be unrated (no_rate)", directory / RATES_FILE)
    _check_charge_bounds(rates, scale, plans_file.max_call_seconds, str(directory / RATES_FILE))
    tenants = _load_tenants(directory, plans)
    return _build(plans, tenants, rates, scale, max_call_seconds=plans_file.max_call_seconds)


def _check_charge_bounds(rates: pl.DataFrame, scale: int, max_call_seconds: int, file: str) -> None:
    """Every charge a rate can make stays within MAX_CHARGE_MICROS: a call of
    max_call_seconds, one sms segment, one ring-through attempt (an sms with too many
    segments to charge exactly is the core's bad_segments)."""
    limit = MAX_CHARGE_MICROS // MICROS * 60 * 10**scale  # in the numerators' unit
    columns = (
        "kind",
        "connect_num",
        "price_num",
        "min_num",
        "first_increment",
        "increment",
        "line",
    )
    for kind, connect, price, minimum, first, inc, line in rates.select(columns).iter_rows():
        if kind == "call":
            billed = (
                first
                if max_call_seconds <= first
                else first + -(-(max_call_seconds - first) // inc) * inc
            )
            most = max(minimum * 60, connect * 60 + price * billed)
            what = f"a call of max_call_seconds ({max_call_seconds} s)"
        else:
            most, what = price * 60, f"one {'segment' if kind == 'sms' else 'attempt'}"
        if most > limit:
            raise ConfigError(
                file,
                line,
                f"{what} at this rate would cost more than {MAX_CHARGE_MICROS // MICROS:,} "
                "currency units, the most one record is ever charged",
                "check the price (a decimal per minute, segment or attempt), or lower "
                "max_call_seconds in plans.yaml",
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


assert MINUTES_PER_WEEK == 7 * 1440
