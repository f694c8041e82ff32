"""Deterministic CDR generation for a tariff deck, and writing the CDRs to a file or messages.

Generation is vectorized with Polars and deterministic for a seed: every random draw is a
hash of (seed, draw number, row number), so the same seed gives the same records. Each draw
number is used for one purpose only; changing or reusing one changes the records of a seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from rater.core.columns import CDR_SCHEMA, TIME
from rater.errors import ConfigError, UsageError
from rater.tariff_files.text import first_line
from rater.wire import encode_cdrs, write_avro_file

__all__ = ["encode_cdrs_json", "generate_cdrs", "write_cdrs"]

_U53 = float(1 << 53)
_USERS_PER_TENANT = 40
_TEAMS_PER_TENANT = 5
_NUMBER_DIGITS = 11  # digits after "+", like most E.164 mobile numbers


# --------------------------------------------------------------------------- tariff deck


def _deck(tariff_dir: Path) -> tuple[list[str], list[str]]:
    """Tenant ids and number prefixes (longest first, non-empty digits) of a tariff dir."""
    tenants_csv, rates_csv = tariff_dir / "tenants.csv", tariff_dir / "rates.csv"
    for f in (tenants_csv, rates_csv):
        if not f.is_file():
            raise ConfigError(str(f), None, "file not found", "point --config at a tariff dir")
    try:
        tenants = pl.read_csv(tenants_csv, columns=["tenant_id"], infer_schema=False)
        rates = pl.read_csv(rates_csv, columns=["prefix"], infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ConfigError(str(tariff_dir), None, f"unreadable deck: {exc}", "fix the CSV") from None
    ids = tenants.get_column("tenant_id").drop_nulls().unique(maintain_order=True).to_list()
    if not ids:
        raise ConfigError(str(tenants_csv), None, "no tenants", "add at least one tenant row")
    prefixes = [
        p
        for p in rates.get_column("prefix").drop_nulls().unique(maintain_order=True).to_list()
        if p.isdigit() and len(p) < _NUMBER_DIGITS - 3
    ]
    return ids, sorted(prefixes) or ["33"]


# --------------------------------------------------------------------------- random draws


def _uniform(seed: int, draw: int) -> pl.Expr:
    """A uniform [0, 1) per row, reproducible for (seed, draw)."""
    h = pl.int_range(pl.len(), dtype=pl.UInt64).hash(seed * 1_000_003 + draw)
    return (h // (1 << 11)).cast(pl.Float64) / _U53


def _digits(seed: int, draw: int, width: int) -> pl.Expr:
    h = pl.int_range(pl.len(), dtype=pl.UInt64).hash(seed * 1_000_003 + draw)
    digits: pl.Expr = (h % (10**width)).cast(pl.String).str.zfill(width)
    return digits


def _pick(options: Sequence[str], u: pl.Expr, skew: float = 1.0) -> pl.Expr:
    """One of ``options`` per row; skew > 1 favours the first ones (a few big tenants)."""
    idx = (u.pow(skew) * len(options)).floor().cast(pl.Int64).clip(0, len(options) - 1)
    return idx.replace_strict(dict(enumerate(options)), return_dtype=pl.String)


def _number(prefix: pl.Expr, seed: int, draw: int) -> pl.Expr:
    rest = (pl.lit(_NUMBER_DIGITS) - prefix.str.len_chars()).clip(lower_bound=4)
    return pl.concat_str(
        pl.lit("+"), prefix, _digits(seed, draw, _NUMBER_DIGITS).str.slice(0, rest)
    )


# --------------------------------------------------------------------------- record shape


def _kind(kind_u: pl.Expr) -> pl.Expr:
    """~75% calls, ~20% SMS, ~5% ring-through attempts."""
    return (
        pl.when(kind_u < 0.75)
        .then(pl.lit("call"))
        .when(kind_u < 0.95)
        .then(pl.lit("sms"))
        .otherwise(pl.lit("ring_through"))
    )


def _talk_ms(seed: int) -> pl.Expr:
    """Talk time: log-normal (median ~70 s), Box-Muller from two uniforms, capped at 4 h."""
    normal = (-2.0 * (1.0 - _uniform(seed, 6)).log()).sqrt() * (
        2.0 * math.pi * _uniform(seed, 7)
    ).cos()
    return (normal * 1.1 + math.log(70_000)).exp().clip(1_000, 4 * 3600 * 1000).cast(pl.Int64)


def _ring_ms(seed: int) -> pl.Expr:
    """Ringing before the answer (or the give-up): 2 to 27 s."""
    return (_uniform(seed, 8) * 25_000 + 2_000).cast(pl.Int64)


def _segments(seed: int) -> pl.Expr:
    """SMS segments (most 1, some 2, a few 3 to 5); 1 for anything else."""
    seg_u = _uniform(seed, 9)
    return (
        pl.when(pl.col("kind") != "sms")
        .then(1)
        .when(seg_u < 0.8)
        .then(1)
        .when(seg_u < 0.95)
        .then(2)
        .otherwise((seg_u * 1000).cast(pl.Int64) % 3 + 3)
        .cast(pl.Int32)
    )


# --------------------------------------------------------------------------- generation


def _check_arguments(count: int, invalid_fraction: float, duplicate_fraction: float) -> None:
    if count < 0:
        raise UsageError("count must be >= 0")
    for name, frac in (("invalid", invalid_fraction), ("duplicate", duplicate_fraction)):
        if not 0.0 <= frac <= 1.0:
            raise UsageError(f"{name} fraction must be within [0, 1], not {frac}")


def _micros(now: datetime, span: timedelta) -> tuple[int, int]:
    """``now`` in micros since the epoch and ``span`` in micros; ``now`` must be aware."""
    if now.tzinfo is None:
        raise UsageError("now must be timezone-aware")
    now_us = int((now - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    span_us = int(span / timedelta(microseconds=1))
    return now_us, span_us


def _draw_records(
    count: int,
    seed: int,
    tenants: Sequence[str],
    prefixes: Sequence[str],
    now_us: int,
    span_us: int,
) -> pl.DataFrame:
    """One row per record with its independent draws: tenant, kind, direction, durations."""

    def u(draw: int) -> pl.Expr:
        return _uniform(seed, draw)

    return pl.DataFrame({"row": pl.int_range(count, eager=True, dtype=pl.Int64)}).with_columns(
        tenant_id=_pick(tenants, u(1), skew=1.6),
        kind=_kind(u(2)),
        direction=pl.when(u(3) < 0.6).then(pl.lit("outbound")).otherwise(pl.lit("inbound")),
        user_n=(u(10) * _USERS_PER_TENANT).floor().cast(pl.Int64),
        has_user=u(11) >= 0.1,
        remote_prefix=_pick(prefixes, u(12)),
        answered=u(4) >= 0.25,
        held=u(5) < 0.12,
        talk_ms=_talk_ms(seed),
        ring_ms=_ring_ms(seed),
        hold_frac=u(13) * 0.4,
        # An hour of margin so that even long calls have ended by ``now``.
        start_us=pl.lit(now_us) - (u(14) * span_us).cast(pl.Int64) - 3600 * 1_000_000,
    )


def _users(tariff_dir: Path) -> pl.DataFrame:
    """users.csv of the tariff directory (tenant_id, user_id, team_id), each user with its
    index within its tenant (``_i``) and its tenant's user count (``_n``); empty when the
    file is absent."""
    schema = {"tenant_id": pl.String, "user_id": pl.String, "team_id": pl.String}
    path = tariff_dir / "users.csv"
    if not path.is_file():
        return pl.DataFrame(schema={**schema, "_i": pl.Int64, "_n": pl.Int64})
    try:
        users = pl.read_csv(path, columns=list(schema), infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ConfigError(
            str(path), None, f"unreadable: {first_line(exc)}", "write tenant_id,user_id,team_id"
        ) from None
    users = users.filter(pl.col("tenant_id").is_not_null() & pl.col("user_id").is_not_null())
    return users.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over("tenant_id").alias("_i"),
        pl.len().over("tenant_id").cast(pl.Int64).alias("_n"),
    )


def _with_users(records: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    """The user and team of each record: one of its tenant's users.csv users, else a
    made-up one (``<tenant>-u<n>`` in ``<tenant>-team<k>``); 10% of records have none."""
    counts = users.group_by("tenant_id").agg(pl.first("_n"))
    picked = (
        records.join(counts, on="tenant_id", how="left", maintain_order="left")
        .with_columns((pl.col("user_n") % pl.col("_n")).alias("_i"))
        .join(
            users.select("tenant_id", "_i", "user_id", "team_id"),
            on=["tenant_id", "_i"],
            how="left",
            maintain_order="left",
        )
    )
    made_up = pl.col("_n").is_null()
    return picked.with_columns(
        user_id=pl.when(~pl.col("has_user"))
        .then(None)
        .when(made_up)
        .then(pl.format("{}-u{}", pl.col("tenant_id"), pl.col("user_n")))
        .otherwise(pl.col("user_id")),
        team_id=pl.when(~pl.col("has_user"))
        .then(None)
        .when(made_up)
        .then(pl.format("{}-team{}", pl.col("tenant_id"), pl.col("user_n") % _TEAMS_PER_TENANT))
        .otherwise(pl.col("team_id")),
    ).drop("_n", "_i")


def _with_parties(records: pl.DataFrame, seed: int, home: str) -> pl.DataFrame:
    """Add the ids, caller and callee, SMS segments and hold time."""
    local = _number(pl.lit(home), seed, 20)
    remote = _number(pl.col("remote_prefix"), seed, 21)
    return records.with_columns(
        cdr_id=pl.format("cdr-{}-{}", pl.lit(seed), pl.col("row")),
        caller=pl.when(pl.col("direction") == "outbound").then(local).otherwise(remote),
        callee=pl.when(pl.col("direction") == "outbound").then(remote).otherwise(local),
        segments=_segments(seed),
        is_call_answered=(pl.col("kind") == "call") & pl.col("answered"),
    ).with_columns(
        hold_ms=pl.when(pl.col("is_call_answered") & pl.col("held"))
        .then((pl.col("talk_ms").cast(pl.Float64) * pl.col("hold_frac")).cast(pl.Int64))
        .otherwise(0),
    )


def _with_times(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the answer (answered calls only) and end times, in micros since the epoch."""
    answer_us = pl.col("start_us") + pl.col("ring_ms") * 1000
    end_us = (
        pl.when(pl.col("is_call_answered"))
        .then(answer_us + (pl.col("talk_ms") + pl.col("hold_ms")) * 1000)
        .when(pl.col("kind") == "sms")
        .then(pl.col("start_us"))
        .otherwise(answer_us)
    )
    return frame.with_columns(
        answer_us=pl.when(pl.col("is_call_answered")).then(answer_us).otherwise(None),
        end_us=end_us,
    )


def _inject_invalid(frame: pl.DataFrame, seed: int, fraction: float) -> pl.DataFrame:
    """Break ``fraction`` of the records: half end before they start, half get a bad callee."""
    bad_u = _uniform(seed, 30)
    chosen = bad_u < fraction
    return frame.with_columns(
        end_us=pl.when(chosen & (bad_u < fraction / 2))
        .then(pl.col("start_us") - 1_000_000)
        .otherwise(pl.col("end_us")),
        answer_us=pl.when(chosen & (bad_u < fraction / 2))
        .then(None)
        .otherwise(pl.col("answer_us")),
        callee=pl.when(chosen & (bad_u >= fraction / 2))
        .then(pl.concat_str(pl.lit("+"), pl.col("remote_prefix"), pl.lit("12AB34")))
        .otherwise(pl.col("callee")),
    )


def _as_emitted(frame: pl.DataFrame) -> pl.DataFrame:
    """The contract's columns, ordered by end time as a switch emits them."""
    return frame.sort("end_us", "row").select(
        pl.col("cdr_id"),
        pl.col("tenant_id"),
        pl.col("user_id"),
        pl.col("team_id"),
        pl.col("kind"),
        pl.col("direction"),
        pl.col("caller"),
        pl.col("callee"),
        pl.col("start_us").cast(TIME).alias("start_time"),
        pl.col("answer_us").cast(TIME).alias("answer_time"),
        pl.col("end_us").cast(TIME).alias("end_time"),
        pl.col("hold_ms").cast(pl.Int64),
        pl.col("segments").cast(pl.Int32),
    )


def _resend(out: pl.DataFrame, seed: int, fraction: float) -> pl.DataFrame:
    """Resend an earlier record: ``fraction`` of the rows i become a copy of a row j < i."""
    pick = out.select(
        pl.when((_uniform(seed, 40) < fraction) & (pl.int_range(pl.len()) > 0))
        .then((_uniform(seed, 41) * pl.int_range(pl.len())).floor().cast(pl.Int64))
        .otherwise(pl.int_range(pl.len(), dtype=pl.Int64))
        .alias("src")
    )
    return out[pick.get_column("src")]


def generate_cdrs(
    tariff_dir: Path,
    count: int,
    seed: int,
    now: datetime | None = None,
    *,
    span: timedelta = timedelta(hours=2),
    invalid_fraction: float = 0.0,
    duplicate_fraction: float = 0.0,
) -> pl.DataFrame:
    """``count`` CDRs (CDR_SCHEMA) for the tenants, prefixes and users (users.csv, when
    present) of ``tariff_dir``.

    ~75% calls (a quarter unanswered, some with hold, log-normal talk time up to 4 h), ~20%
    SMS (some multi-segment), ~5% ring-through attempts; start times spread over ``span``
    before ``now``; records ordered by end time, as a switch emits them. ``invalid_fraction``
    of the records get an end before their start or a malformed callee;
    ``duplicate_fraction`` are resends of an earlier record, unchanged.
    """
    _check_arguments(count, invalid_fraction, duplicate_fraction)
    tenants, prefixes = _deck(tariff_dir)
    now_us, span_us = _micros(now or datetime.now(UTC), span)
    records = _draw_records(count, seed, tenants, prefixes, now_us, span_us)
    records = _with_users(records, _users(Path(tariff_dir)))
    frame = _with_times(_with_parties(records, seed, home=prefixes[0]))
    if invalid_fraction > 0:
        frame = _inject_invalid(frame, seed, invalid_fraction)
    out = _as_emitted(frame)
    if duplicate_fraction > 0 and count > 1:
        out = _resend(out, seed, duplicate_fraction)
    return out.cast(CDR_SCHEMA)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- encoding


def encode_cdrs_json(frame: pl.DataFrame) -> list[bytes]:
    """One JSON object per row; timestamps as integer micros since the epoch (exact)."""
    if frame.height == 0:
        return []
    ints = frame.with_columns(
        pl.col(c).dt.epoch("us") for c in frame.columns if frame[c].dtype == TIME
    )
    return ints.write_ndjson().encode().splitlines()


def write_cdrs(frame: pl.DataFrame, path: Path) -> None:
    """Write CDRs to ``path``: .parquet, .csv (ISO-8601 UTC timestamps) or .avro (container)."""
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.write_parquet(path)
    elif suffix == ".csv":
        frame.write_csv(path, datetime_format="%Y-%m-%dT%H:%M:%S%.6fZ")
    elif suffix == ".avro":
        write_avro_file(path, "cdr", encode_cdrs(frame))
    else:
        raise UsageError(f"--output must end in .csv, .parquet or .avro, not {path.name!r}")
