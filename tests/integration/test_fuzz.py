"""Fuzz `rater run` against a real broker: thousands of hostile messages mixed with valid
traffic on the CDR and top-up topics, and the rater must account for every one of them.

Every hostile message is drawn from a seeded ``random.Random`` (SEED below), so a failure
reproduces. What should become of each message is worked out without the rater's own
decoders:

- an Avro CDR is read by ``_read_cdr``, a strict reader of schemas/cdr.avsc written for
  this test (64-bit longs, 32-bit ints, UTF-8 strings, union and enum indexes in range, no
  trailing bytes); a message it cannot read must be dead-lettered;
- a readable CDR must be dead-lettered as ``timestamp_out_of_range`` when a time is not a
  calendar date (year 1 to 9999), else as ``misrouted`` when its key is not its tenant_id
  or it is not on the partition murmur2 gives that tenant, else rated (rated topic, and
  also the dead-letter topic when ``invalid``), exactly as `rater rate-file` rates it;
- hand-made absurd records (ABSURD, JSON_HOSTILE) carry the outcome rule 1 gives them;
- valid CDRs must rate exactly as `rater rate-file` rates them alone: hostile records that
  pass rule 1 all belong to HOSTILE_TENANT, which valid traffic never uses;
- every hostile top-up is dead-lettered, every distinct valid one credited once.

The stream ends calm (long runs of valid CDRs with a rare poison among them) so that the
rater's bulk decoder, not only its message-by-message fallback, meets hostile input. The
rater runs in-process with a fixed wall clock (it only caps the dedupe watermark), under a
watchdog that turns a hang or a crash loop into a failure instead of a stuck suite. A
failure lists the problems grouped by kind, smallest message first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from rater import wire
from rater.batch import rate_file
from rater.core.columns import CDR_SCHEMA, TIME
from rater.core.rating import balances_frame
from rater.core.state import RatingState
from rater.logs import KAFKA_LOGGER
from rater.simulate import encode_cdrs_json, generate_cdrs
from rater.stream.clients import restore_partition
from rater.stream.job import RaterJob, RunSummary
from rater.stream.partitioner import partition_for
from rater.tariff_files import load_tariff
from tests.integration.streamkit import EXAMPLE_CONFIG, StreamEnv, create_topics, read_topic

pytestmark = pytest.mark.kafka

SEED = 20261122
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday: peak hours in every plan
US = 1_000_000
NOW_US = int((NOW - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
CLOCK_S = NOW.timestamp() + 3600  # the rater's wall clock
JOB_TIMEOUT_S = 150.0
RESTARTS_TOLERATED = 2  # client restarts of one run before it counts as a crash loop

HOSTILE_TENANT = "hooli"  # postpaid, us-standard: no call allowance, no balance
VALID_TENANTS = ("acme", "globex", "tinyco", "initech", "wayne", "umbrella", "stark")
PREPAID = ("globex", "tinyco", "wayne", "umbrella", "stark")
POSTPAID = ("acme", "initech", "hooli")

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
Y2000_US = 946_684_800_000_000
Y2100_US = 4_102_444_800_000_000
YEAR_1_US = -62_135_596_800_000_000  # 0001-01-01T00:00Z
YEAR_9999_END_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
HUGE = 900 * 1024

DECODE_REASONS = frozenset({"truncated_avro", "avro_decode_error"})
JSON_REASONS = frozenset({"json_decode_error", "invalid_json_record"})
RULE1_REASONS = ("unknown_tenant", "bad_times", "bad_hold", "bad_segments", "bad_number")
RATING_FIELDS = (
    "status",
    "reason",
    "plan_id",
    "rate_prefix",
    "band",
    "billed_seconds",
    "covered",
    "charge_micros",
    "charge",
    "currency",
)
UNICODE_DIGITS = "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹०१२३४५६७८९０１２３４５６７８９¹²³"


# =========================================================================== messages


@dataclass(frozen=True)
class Outgoing:
    """One message to publish, and what the fuzzer meant by it.

    ``expect``: ``"valid"`` (valid traffic), None (decided by the Avro oracle), ``"pass"``
    (reaches rating and passes rule 1), a rule 1 reason (reaches rating and is invalid for
    it), ``"dead"`` (dead-lettered for any decoding reason) or ``"dead:<reason>"``.
    """

    kind: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None  # an explicit partition; None: the producer's partitioner
    expect: str | None = None


@dataclass(frozen=True)
class Sent:
    out: Outgoing
    partition: int
    offset: int

    @property
    def pos(self) -> tuple[int, int]:
        return (self.partition, self.offset)

    def describe(self) -> str:
        value = self.out.value
        shown = value if value is None or len(value) <= 160 else value[:160] + b"..."
        size = "" if value is None else f" ({len(value)} bytes)"
        return f"[{self.out.kind}] key={self.out.key!r} p{self.partition}@{self.offset}{size} value={shown!r}"


def _publish_recorded(bootstrap: str, topic: str, items: Sequence[Outgoing]) -> list[Sent]:
    """Produce ``items`` in order (murmur2_random, as switches do) and return where each
    one landed."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )
    landed: list[tuple[int, int] | None] = [None] * len(items)
    errors: list[str] = []

    def reporter(i: int) -> Callable[[Any, Any], None]:
        def report(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(f"{items[i].kind}: {err}")
            else:
                landed[i] = (msg.partition(), msg.offset())

        return report

    for i, item in enumerate(items):
        kwargs: dict[str, Any] = {"key": item.key, "value": item.value, "on_delivery": reporter(i)}
        if item.partition is not None:
            kwargs["partition"] = item.partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0
    assert not errors, errors[:5]
    return [Sent(item, *pos) for item, pos in zip(items, landed, strict=True) if pos is not None]


def _interleave(rng: random.Random, a: Sequence[Outgoing], b: Sequence[Outgoing]) -> list[Outgoing]:
    """A random merge of ``a`` and ``b`` that keeps the order within each."""
    out: list[Outgoing] = []
    i = j = 0
    while i < len(a) or j < len(b):
        left, right = len(a) - i, len(b) - j
        if right == 0 or (left and rng.random() < left / (left + right)):
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


def _with_calm_end(
    rng: random.Random,
    valid: Sequence[Outgoing],
    hostile: Sequence[Outgoing],
    rare: Sequence[Outgoing],
    calm: int,
) -> list[Outgoing]:
    """``valid`` and ``hostile`` mixed at random, then the last ``calm`` valid messages
    with only the ``rare`` ones among them (batches the rater decodes in bulk)."""
    stormy = _interleave(rng, valid[:-calm], hostile)
    return stormy + _interleave(rng, valid[-calm:], rare)


def _right_partition(tenant: str, partitions: int) -> int:
    return partition_for(tenant.encode(), partitions, "murmur2_random")


# =========================================================================== valid traffic


def _valid_cdrs(count: int, seed: int) -> pl.DataFrame:
    """Simulated switch traffic of every tenant but HOSTILE_TENANT, with resends."""
    frame = generate_cdrs(EXAMPLE_CONFIG, count=count, seed=seed, now=NOW, duplicate_fraction=0.02)
    return frame.filter(pl.col("tenant_id") != HOSTILE_TENANT)


def _valid_avro_items(frame: pl.DataFrame) -> list[Outgoing]:
    values = wire.encode_cdrs(frame.select(list(CDR_SCHEMA)))
    tenants = frame.get_column("tenant_id").to_list()
    return [
        Outgoing("valid", t.encode(), v, expect="valid")
        for t, v in zip(tenants, values, strict=True)
    ]


def _valid_json_items(frame: pl.DataFrame) -> list[Outgoing]:
    values = encode_cdrs_json(frame)
    tenants = frame.get_column("tenant_id").to_list()
    return [
        Outgoing("valid", t.encode(), v, expect="valid")
        for t, v in zip(tenants, values, strict=True)
    ]


# =========================================================================== hostile CDRs


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _garbage(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


# Absurd field values: (name, rule 1 outcome, changes to a plain record). Times are integer
# micros. "dead:timestamp_out_of_range": a time no calendar shows (the rater dead-letters
# those, see rater/stream/messages.py); "dead:avro": not a value of the schema's type.
Mutation = Callable[[dict[str, Any], random.Random], dict[str, Any]]


def _sms(r: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "sms", "answer_time": None, "end_time": r["start_time"]}


def _call(r: dict[str, Any]) -> dict[str, Any]:
    s = r["start_time"]
    return {"kind": "call", "answer_time": s + 5 * US, "end_time": s + 65 * US}


def _unanswered(start: int, end: int) -> dict[str, Any]:
    return {"kind": "ring_through", "start_time": start, "answer_time": None, "end_time": end}


ABSURD: list[tuple[str, str, Mutation]] = [
    ("callee_40_digits", "bad_number", lambda r, g: {"callee": "+" + _digits(g, 40)}),
    ("callee_60_digits", "bad_number", lambda r, g: {"callee": _digits(g, 60)}),
    ("callee_16_digits", "bad_number", lambda r, g: {"callee": "+1" + _digits(g, 15)}),
    ("callee_15_digits", "pass", lambda r, g: {"callee": "+1" + _digits(g, 14)}),
    ("callee_plus", "bad_number", lambda r, g: {"callee": "+"}),
    ("callee_empty", "bad_number", lambda r, g: {"callee": ""}),
    ("callee_two_plus", "bad_number", lambda r, g: {"callee": "++1" + _digits(g, 10)}),
    ("callee_minus", "bad_number", lambda r, g: {"callee": "-1" + _digits(g, 10)}),
    ("callee_plus_minus", "bad_number", lambda r, g: {"callee": "+-1" + _digits(g, 10)}),
    ("callee_space", "bad_number", lambda r, g: {"callee": "+1 212 555 0100"}),
    ("callee_underscores", "bad_number", lambda r, g: {"callee": "+1_212_555_0100"}),
    ("callee_nul", "bad_number", lambda r, g: {"callee": "+1212\x005550100"}),
    (
        "callee_unicode_digits",
        "bad_number",
        lambda r, g: {"callee": "+" + "".join(g.choice(UNICODE_DIGITS) for _ in range(11))},
    ),
    (
        "year_9999",
        "bad_times",
        lambda r, g: _unanswered(YEAR_9999_END_US - 60 * US, YEAR_9999_END_US),
    ),
    ("year_1", "bad_times", lambda r, g: _unanswered(YEAR_1_US, YEAR_1_US + 60 * US)),
    ("answer_year_9999", "bad_times", lambda r, g: {**_call(r), "answer_time": YEAR_9999_END_US}),
    ("answer_year_1", "bad_times", lambda r, g: {**_call(r), "answer_time": YEAR_1_US}),
    ("before_2000", "bad_times", lambda r, g: _unanswered(Y2000_US - 1, Y2000_US + 59 * US)),
    ("at_2000", "pass", lambda r, g: _unanswered(Y2000_US, Y2000_US + 20 * US)),
    ("just_before_2100", "pass", lambda r, g: _unanswered(Y2100_US - 61 * US, Y2100_US - 1)),
    ("ends_at_2100", "bad_times", lambda r, g: _unanswered(Y2100_US - 60 * US, Y2100_US)),
    (
        "near_int64_min",
        "dead:timestamp_out_of_range",
        lambda r, g: _unanswered(I64_MIN, I64_MIN + g.randrange(1, 10**6)),
    ),
    (
        "near_int64_max",
        "dead:timestamp_out_of_range",
        lambda r, g: _unanswered(I64_MAX - g.randrange(1, 10**6), I64_MAX),
    ),
    ("end_int64_max", "dead:timestamp_out_of_range", lambda r, g: {"end_time": I64_MAX}),
    ("answer_int64_min", "dead:timestamp_out_of_range", lambda r, g: {"answer_time": I64_MIN}),
    (
        "just_before_year_1",
        "dead:timestamp_out_of_range",
        lambda r, g: _unanswered(YEAR_1_US - 1, YEAR_1_US + 60 * US),
    ),
    (
        "just_after_year_9999",
        "dead:timestamp_out_of_range",
        lambda r, g: _unanswered(YEAR_9999_END_US - 60 * US, YEAR_9999_END_US + 1),
    ),
    (
        "end_before_start",
        "bad_times",
        lambda r, g: _unanswered(r["start_time"], r["start_time"] - 1),
    ),
    (
        "answer_before_start",
        "bad_times",
        lambda r, g: {**_call(r), "answer_time": r["start_time"] - 1},
    ),
    (
        "answer_after_end",
        "bad_times",
        lambda r, g: {**_call(r), "answer_time": r["start_time"] + 65 * US + 1},
    ),
    (
        "longer_than_a_day",
        "bad_times",
        lambda r, g: {**_call(r), "end_time": r["start_time"] + 86_400 * US + 1},
    ),
    ("hold_negative", "bad_hold", lambda r, g: {**_call(r), "hold_ms": -g.randrange(1, 10**6)}),
    ("hold_int64_max", "bad_hold", lambda r, g: {**_call(r), "hold_ms": I64_MAX}),
    ("hold_int64_min", "bad_hold", lambda r, g: {**_call(r), "hold_ms": I64_MIN}),
    ("hold_beyond_answered", "bad_hold", lambda r, g: {**_call(r), "hold_ms": 60_001}),
    ("sms_segments_0", "bad_segments", lambda r, g: {**_sms(r), "segments": 0}),
    ("sms_segments_negative", "bad_segments", lambda r, g: {**_sms(r), "segments": -1}),
    ("sms_segments_int32_min", "bad_segments", lambda r, g: {**_sms(r), "segments": I32_MIN}),
    ("sms_segments_int32_max", "bad_segments", lambda r, g: {**_sms(r), "segments": I32_MAX}),
    ("call_segments_int32_max", "pass", lambda r, g: {**_call(r), "segments": I32_MAX}),
    ("ring_segments_0", "pass", lambda r, g: {"kind": "ring_through", "segments": 0}),
    (
        "control_char_cdr_id",
        "pass",
        lambda r, g: {"cdr_id": "".join(chr(g.choice([*range(32), 127])) for _ in range(60))},
    ),
    ("huge_user_id", "pass", lambda r, g: {"user_id": "u" * 10_000, "team_id": "\x00\u2028"}),
    (
        "unknown_tenant",
        "unknown_tenant",
        lambda r, g: {
            "tenant_id": g.choice(
                ["nobody", "", "HOOLI", "hooli ", "\x00", "ünïcödé", "t" * 300, "acme\x00"]
            )
        },
    ),
    # Not values of the schema's types: encode_cdr refuses them, so they are written by
    # hand (_beyond_types) as varints no Avro reader should accept.
    ("segments_beyond_int32", "dead:avro", lambda r, g: {**_call(r), "segments": 2**31}),
    ("segments_below_int32", "dead:avro", lambda r, g: {**_sms(r), "segments": I32_MIN - 1}),
    ("segments_2_pow_40", "dead:avro", lambda r, g: {**_call(r), "segments": 2**40}),
    ("hold_beyond_int64", "dead:avro", lambda r, g: {**_call(r), "hold_ms": 2**64}),
]


def _varint_any(n: int) -> bytes:
    """The zigzag varint of any integer, however large: what no Avro int or long holds."""
    z = n * 2 if n >= 0 else -n * 2 - 1
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _beyond_types(rec: dict[str, Any]) -> bytes | None:
    """``rec`` with hold_ms or segments outside its Avro type, written by hand (they are the
    last two fields of the schema); None when nothing else is wrong with it."""
    hold, segments = rec.get("hold_ms") or 0, rec.get("segments") or 1
    fits = I64_MIN <= hold <= I64_MAX and I32_MIN <= segments <= I32_MAX
    if fits:
        return None
    try:
        body = wire.encode_cdr({**rec, "hold_ms": 0, "segments": 1})
    except (ValueError, TypeError, OverflowError):
        return None
    assert body.endswith(b"\x00\x02")
    return body[:-2] + _varint_any(hold) + _varint_any(segments)


class CdrFuzzer:
    """Hostile CDR messages, all drawn from one seeded random.Random."""

    def __init__(self, rng: random.Random, partitions: int) -> None:
        self.rng = rng
        self.partitions = partitions
        self.n = 0
        self.skipped: Counter[str] = Counter()

    def _id(self) -> str:
        self.n += 1
        return f"fuzz-{self.n}"

    def plain(self, tenant: str = HOSTILE_TENANT) -> dict[str, Any]:
        """A record that passes rule 1 (times are integer micros)."""
        g = self.rng
        kind = g.choice(["call", "call", "sms", "ring_through"])
        start = NOW_US - g.randrange(3_600, 7_200) * US
        rec: dict[str, Any] = {
            "cdr_id": self._id(),
            "tenant_id": tenant,
            "user_id": None,
            "team_id": None,
            "kind": kind,
            "direction": g.choice(["inbound", "outbound"]),
            "caller": "+12125550100",
            "callee": "+1" + _digits(g, 10),
            "start_time": start,
            "answer_time": None,
            "end_time": start + 20 * US,
            "hold_ms": 0,
            "segments": 1,
        }
        if kind == "call":
            rec.update(_call(rec))
        elif kind == "sms":
            rec.update(_sms(rec))
        return rec

    def body(self, tenant: str = HOSTILE_TENANT) -> bytes:
        return wire.encode_cdr(self.plain(tenant))

    # -- kinds: each returns one message (or None when it cannot be encoded)

    def random_bytes(self) -> Outgoing:
        g = self.rng
        size = g.choice([1, 2, 3, 5, 8, g.randrange(1, 64), g.randrange(64, 2048)])
        return Outgoing("random_bytes", self._key(), _garbage(g, size))

    def truncated(self) -> Outgoing:
        body = self.body()
        return Outgoing(
            "truncated", HOSTILE_TENANT.encode(), body[: self.rng.randrange(1, len(body))]
        )

    def bit_flipped(self) -> Outgoing:
        body = bytearray(self.body())
        for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
            body[self.rng.randrange(len(body))] ^= 1 << self.rng.randrange(8)
        return Outgoing("bit_flipped", HOSTILE_TENANT.encode(), bytes(body))

    def trailing_garbage(self) -> Outgoing:
        tail = _garbage(self.rng, self.rng.randrange(1, 17))
        return Outgoing("trailing_garbage", HOSTILE_TENANT.encode(), self.body() + tail)

    def empty(self) -> Outgoing:
        value = self.rng.choice([b"", None])
        return Outgoing("empty", self._key(), value, expect="dead:empty_message")

    def null_key(self) -> Outgoing:
        tenant = self.rng.choice(VALID_TENANTS)
        return Outgoing("null_key", None, self.body(tenant), expect="dead:misrouted")

    def wrong_key(self) -> Outgoing:
        g = self.rng
        tenant = g.choice(VALID_TENANTS)
        key = g.choice(
            [
                g.choice([t for t in VALID_TENANTS if t != tenant]).encode(),
                tenant.upper().encode(),
                tenant.encode() + b"\x00",
                b"",
                tenant.encode("utf-16"),
            ]
        )
        return Outgoing("wrong_key", key, self.body(tenant), expect="dead:misrouted")

    def wrong_partition(self) -> Outgoing:
        tenant = self.rng.choice(VALID_TENANTS)
        right = _right_partition(tenant, self.partitions)
        wrong = (right + self.rng.randrange(1, self.partitions)) % self.partitions
        return Outgoing(
            "wrong_partition", tenant.encode(), self.body(tenant), wrong, "dead:misrouted"
        )

    def absurd(self, names: Sequence[str] = ()) -> Outgoing | None:
        """A record with one absurd field from ABSURD (one of ``names`` if given)."""
        name, expect, mutate = self.rng.choice([a for a in ABSURD if not names or a[0] in names])
        rec = self.plain()
        rec.update(mutate(rec, self.rng))
        try:
            value = wire.encode_cdr(rec)
        except (ValueError, TypeError, OverflowError):
            beyond = _beyond_types(rec)
            if beyond is None:
                self.skipped[name] += 1
                return None
            value = beyond
        return Outgoing(name, rec["tenant_id"].encode(), value, expect=expect)

    def huge(self) -> list[Outgoing]:
        """Messages of ~900 KB: garbage, a huge callee, a huge cdr_id that passes rule 1."""
        g = self.rng
        long_id = self.plain()
        long_id["cdr_id"] = "x" * HUGE
        callee = self.plain()
        callee["callee"] = "+" + _digits(g, HUGE)
        return [
            Outgoing("huge_random_bytes", HOSTILE_TENANT.encode(), _garbage(g, HUGE)),
            Outgoing(
                "huge_callee", HOSTILE_TENANT.encode(), wire.encode_cdr(callee), expect="bad_number"
            ),
            Outgoing(
                "huge_cdr_id", HOSTILE_TENANT.encode(), wire.encode_cdr(long_id), expect="pass"
            ),
        ]

    def _key(self) -> bytes:
        return self.rng.choice([*VALID_TENANTS, HOSTILE_TENANT]).encode()

    def rare_poison(self, count: int) -> list[Outgoing]:
        """Hostile messages to hide in long runs of valid traffic, where the rater decodes
        whole batches in bulk: only the ones a bulk decoder might not notice."""
        beyond = [name for name, expect, _ in ABSURD if expect == "dead:avro"]
        makers: list[Callable[[], Outgoing | None]] = [
            lambda: self.absurd(beyond),
            self.bit_flipped,
            self.absurd,
            self.wrong_partition,
        ]
        out: list[Outgoing] = []
        while len(out) < count:
            made = self.rng.choice(makers)()
            if made is not None:
                out.append(made)
        return out

    def messages(self, count: int) -> list[Outgoing]:
        kinds: dict[Callable[[], Outgoing | None], int] = {
            self.random_bytes: 15,
            self.truncated: 12,
            self.bit_flipped: 15,
            self.trailing_garbage: 8,
            self.empty: 4,
            self.null_key: 6,
            self.wrong_key: 6,
            self.wrong_partition: 6,
            self.absurd: 28,
        }
        out: list[Outgoing] = [*self.huge(), *self.huge()]
        makers, weights = list(kinds), list(kinds.values())
        while len(out) < count:
            made = self.rng.choices(makers, weights)[0]()
            if made is not None:
                out.append(made)
        self.rng.shuffle(out)
        return out


# =========================================================================== the Avro oracle


class _Unreadable(Exception):
    pass


class _AvroReader:
    """A strict reader of one Avro binary body (the test's own, not the rater's)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def long(self) -> int:
        raw, shift = 0, 0
        while True:
            if self.pos >= len(self.data):
                raise _Unreadable("truncated")
            b = self.data[self.pos]
            self.pos += 1
            raw |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                raise _Unreadable("varint longer than 10 bytes")
        if raw >= 1 << 64:
            raise _Unreadable("varint beyond 64 bits")
        return (raw >> 1) ^ -(raw & 1)

    def int(self) -> int:
        v = self.long()
        if not I32_MIN <= v <= I32_MAX:
            raise _Unreadable("int beyond 32 bits")
        return v

    def string(self) -> str:
        n = self.long()
        if n < 0 or self.pos + n > len(self.data):
            raise _Unreadable("bad string length")
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Unreadable("not UTF-8") from None

    def optional(self, read: Callable[[], Any]) -> Any:
        branch = self.long()
        if branch not in (0, 1):
            raise _Unreadable("bad union index")
        return None if branch == 0 else read()

    def enum(self, symbols: Sequence[str]) -> str:
        i = self.long()
        if not 0 <= i < len(symbols):
            raise _Unreadable("bad enum index")
        return symbols[i]


def _read_cdr(body: bytes) -> dict[str, Any]:
    """A CDR in the field order of schemas/cdr.avsc; raises _Unreadable."""
    r = _AvroReader(body)
    rec = {
        "cdr_id": r.string(),
        "tenant_id": r.string(),
        "user_id": r.optional(r.string),
        "team_id": r.optional(r.string),
        "kind": r.enum(("call", "sms", "ring_through")),
        "direction": r.enum(("inbound", "outbound")),
        "caller": r.string(),
        "callee": r.string(),
        "start_time": r.long(),
        "answer_time": r.optional(r.long),
        "end_time": r.long(),
        "hold_ms": r.long(),
        "segments": r.int(),
    }
    if r.pos != len(body):
        raise _Unreadable("trailing bytes")
    return rec


def test_the_oracle_reads_what_the_codec_writes() -> None:
    fuzz = CdrFuzzer(random.Random(1), 3)
    for _ in range(50):
        rec = fuzz.plain()
        assert _read_cdr(wire.encode_cdr(rec)) == rec
    body = wire.encode_cdr(rec)
    direction = body.index(b"\x18+1212") - 1  # the byte before the caller
    unreadable = [
        body + b"\x00",  # trailing byte
        body[:-1],  # truncated
        body[:direction] + b"\x03" + body[direction + 1 :],  # enum index -2
        _beyond_types({**rec, "segments": 2**31}),  # not an Avro int
        _beyond_types({**rec, "hold_ms": 2**64}),  # not an Avro long
        wire.encode_cdr({**rec, "cdr_id": "ab"}).replace(b"ab", b"\xff\xfe"),  # not UTF-8
    ]
    for value in unreadable:
        with pytest.raises(_Unreadable):
            _read_cdr(value)


@dataclass(frozen=True)
class Fate:
    """What must become of one message: dead-lettered with one of ``dead`` reasons, or
    rated (``rule1``: the hand-made outcome; ``record``: the Avro CDR as the oracle read
    it, whose bytes the rated record must start with)."""

    dead: frozenset[str] | None = None
    record: dict[str, Any] | None = None
    rule1: str | None = None


def _calendar(us: int | None) -> bool:
    return us is None or YEAR_1_US <= us <= YEAR_9999_END_US


def _avro_fate(s: Sent, partitions: int) -> Fate:
    out = s.out
    if not out.value:
        return Fate(dead=frozenset({"empty_message"}))
    try:
        rec = _read_cdr(out.value)
    except _Unreadable:
        return Fate(dead=DECODE_REASONS)
    if not all(_calendar(rec[c]) for c in ("start_time", "answer_time", "end_time")):
        return Fate(dead=frozenset({"timestamp_out_of_range"}))
    tenant = rec["tenant_id"]
    if out.key != tenant.encode() or s.partition != _right_partition(tenant, partitions):
        return Fate(dead=frozenset({"misrouted"}))
    rule1 = out.expect if out.expect in ("pass", *RULE1_REASONS) else None
    return Fate(record=rec, rule1=rule1)


def _declared_fate_problems(sent: Sequence[Sent], fates: Sequence[Fate]) -> list[str]:
    """The fuzzer's intent and the oracle must agree (a check of the test itself)."""
    problems = []
    for s, f in zip(sent, fates, strict=True):
        expect = s.out.expect
        if expect is None or expect == "valid":
            continue
        if expect.startswith("dead"):
            wanted = expect.partition(":")[2]
            ok = f.dead is not None and (wanted in ("", "avro") or wanted in f.dead)
        else:
            ok = f.dead is None
        if not ok:
            problems.append(
                f"test bug: oracle fate {f.dead} disagrees with {expect}: {s.describe()}"
            )
    return problems


# =========================================================================== hostile top-ups

VALID_AMOUNTS = ("25.00", "0.000001", "10", "1000000000", "999.999999", "0.5")
BAD_AMOUNTS = (
    "1e30",
    "NaN",
    "Infinity",
    "-5",
    "0",
    "0.000000",
    "1" + "0" * 40,
    "1.1234567",
    "1000000000.000001",
    " 5",
    "5 ",
    "+5",
    "0x10",
    "1,5",
    "",
    "٥",
    "5.",
    ".5",
)
BAD_TIMES: tuple[Any, ...] = (
    datetime(9999, 12, 31, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    I64_MAX,
    I64_MIN,
    Y2000_US - 1,
    Y2100_US,
    "2026-11-20T10:00:00+00:00",  # ISO text: not an Avro long, so skipped (JSON tests it)
)


class TopupFuzzer:
    """Valid (some resent) and hostile top-ups; ``format`` is "avro" or "json"."""

    def __init__(self, rng: random.Random, partitions: int, fmt: str = "avro") -> None:
        self.rng, self.partitions, self.fmt = rng, partitions, fmt
        self.n = 0
        self.skipped: Counter[str] = Counter()

    def record(self, tenant: str, **changes: Any) -> dict[str, Any]:
        self.n += 1
        g = self.rng
        rec = {
            "tenant_id": tenant,
            "topup_id": f"tu-{self.n}",
            "amount": g.choice(VALID_AMOUNTS),
            "source": g.choice(["manual", "auto_recharge"]),
            "time": NOW_US - g.randrange(3_600) * US,
        }
        rec.update(changes)
        return rec

    def encode(self, rec: dict[str, Any]) -> bytes:
        if self.fmt == "json":
            return json.dumps(rec).encode()
        return wire.encode_topup(rec)

    def valid(self, count: int, resent: int) -> list[Outgoing]:
        out = []
        for _ in range(count):
            rec = self.record(self.rng.choice(PREPAID))
            if self.fmt == "json" and self.rng.random() < 0.5:
                rec["time"] = "2026-11-20T10:00:00+00:00"
            out.append(
                Outgoing("valid_topup", rec["tenant_id"].encode(), self.encode(rec), expect="valid")
            )
        out += [self.rng.choice(out) for _ in range(resent)]
        return out

    def prepaid(self, kind: str, **changes: Any) -> Outgoing | None:
        """A top-up of a prepaid tenant with ``changes`` (None when not encodable)."""
        rec = self.record(self.rng.choice(PREPAID), **changes)
        try:
            value = self.encode(rec)
        except (ValueError, TypeError, OverflowError):
            self.skipped[kind] += 1
            return None
        return Outgoing(kind, rec["tenant_id"].encode(), value, expect="dead")

    # -- kinds: none of them may credit anything

    def random_bytes(self) -> Outgoing:
        value = _garbage(self.rng, self.rng.randrange(1, 300))
        return Outgoing("random_bytes", self._key(), value, expect="dead")

    def empty(self) -> Outgoing:
        return Outgoing("empty", self._key(), self.rng.choice([b"", None]), expect="dead")

    def truncated(self) -> Outgoing:
        value = self.encode(self.record(self.rng.choice(PREPAID)))
        return Outgoing(
            "truncated", self._key(), value[: self.rng.randrange(1, len(value))], expect="dead"
        )

    def trailing_garbage(self) -> Outgoing:
        rec = self.record(self.rng.choice(PREPAID))
        value = self.encode(rec) + _garbage(self.rng, self.rng.randrange(1, 9))
        return Outgoing("trailing_garbage", rec["tenant_id"].encode(), value, expect="dead")

    def bit_flipped(self) -> Outgoing:
        """A flipped bit in a postpaid tenant's top-up: whatever it decodes to, no credit."""
        value = bytearray(self.encode(self.record(HOSTILE_TENANT)))
        value[self.rng.randrange(len(value))] ^= 1 << self.rng.randrange(8)
        return Outgoing("bit_flipped", HOSTILE_TENANT.encode(), bytes(value), expect="dead")

    def bad_amount(self) -> Outgoing | None:
        return self.prepaid("bad_amount", amount=self.rng.choice(BAD_AMOUNTS))

    def bad_time(self) -> Outgoing | None:
        return self.prepaid("bad_time", time=self.rng.choice(BAD_TIMES))

    def missing_topup_id(self) -> Outgoing | None:
        return self.prepaid("missing_topup_id", topup_id="")

    def not_prepaid(self) -> Outgoing:
        tenant = self.rng.choice(["nobody", "", "GLOBEX", "globex ", *POSTPAID])
        return Outgoing(
            "not_prepaid", tenant.encode(), self.encode(self.record(tenant)), expect="dead"
        )

    def misrouted(self) -> Outgoing:
        g = self.rng
        rec = self.record(g.choice(PREPAID))
        tenant, value = rec["tenant_id"], self.encode(rec)
        how = g.randrange(3)
        if how == 0:
            return Outgoing("topup_null_key", None, value, expect="dead")
        if how == 1:
            other = g.choice([t for t in PREPAID if t != tenant]).encode()
            return Outgoing("topup_wrong_key", other, value, expect="dead")
        right = _right_partition(tenant, self.partitions)
        wrong = (right + g.randrange(1, self.partitions)) % self.partitions
        return Outgoing("topup_wrong_partition", tenant.encode(), value, wrong, expect="dead")

    def _key(self) -> bytes:
        return self.rng.choice(PREPAID).encode()

    def messages(self, valid: int, resent: int, hostile: int) -> list[Outgoing]:
        kinds: dict[Callable[[], Outgoing | None], int] = {
            self.random_bytes: 1,
            self.empty: 1,
            self.truncated: 1,
            self.trailing_garbage: 1,
            self.bit_flipped: 1,
            self.bad_amount: 2,
            self.bad_time: 1,
            self.missing_topup_id: 1,
            self.not_prepaid: 1,
            self.misrouted: 2,
        }
        makers, weights = list(kinds), list(kinds.values())
        bad = [Outgoing("huge_random_bytes", b"globex", _garbage(self.rng, HUGE), expect="dead")]
        while len(bad) < hostile:
            made = self.rng.choices(makers, weights)[0]()
            if made is not None:
                bad.append(made)
        return _interleave(self.rng, self.valid(valid, resent), bad)


def _topup_credits(sent: Sequence[Sent], fmt: str) -> dict[str, int]:
    """Micros each tenant must be credited: every distinct valid top-up once."""
    seen: dict[tuple[str, str], int] = {}
    for s in sent:
        if s.out.expect == "valid":
            assert s.out.value is not None
            rec = json.loads(s.out.value) if fmt == "json" else wire.decode_topup(s.out.value)
            seen[(rec["tenant_id"], rec["topup_id"])] = int(Decimal(rec["amount"]).scaleb(6))
    credits: Counter[str] = Counter()
    for (tenant, _), micros in seen.items():
        credits[tenant] += micros
    return dict(credits)


# =========================================================================== running the rater


@pytest.fixture
def fuzz_env(kafka_bootstrap: str, tmp_path: Path) -> StreamEnv:
    env = StreamEnv(kafka_bootstrap, f"z{uuid.uuid4().hex[:8]}", tmp_path / "out")
    create_topics(env)
    return env


# Warnings of these loggers are about the input, not the environment: each is a problem.
_DATA_LOGGERS = ("rater.stream.rate_messages", "rater.core", "rater.wire", "sinks")


class _LogTap(logging.Handler):
    """What the rater logs at WARNING or above while it runs (librdkafka's own log aside),
    and the first traceback it logs (the job logs a client restart's at DEBUG).

    ``problems``: errors, and warnings about the input (a message it could not rate);
    warnings about the broker (a retried commit) are not, a busy machine can cause them.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.problems: list[str] = []
        self.traceback: str | None = None
        self.restarts = 0
        self.crash_loop = threading.Event()  # set at the RESTARTS_TOLERATED + 1st restart

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and self.traceback is None:
            self.traceback = "".join(traceback.format_exception(*record.exc_info))
        if record.name == "rater.stream.job" and "restarting clients" in record.getMessage():
            self.restarts += 1
            if self.restarts > RESTARTS_TOLERATED:
                self.crash_loop.set()
        if record.levelno < logging.WARNING or record.name == KAFKA_LOGGER:
            return
        line = f"{record.levelname} {record.name}: {record.getMessage()}"
        self.lines.append(line)
        if record.levelno >= logging.ERROR or record.name.startswith(_DATA_LOGGERS):
            self.problems.append(line)

    @contextlib.contextmanager
    def attached(self) -> Iterator[_LogTap]:
        job_log = logging.getLogger("rater.stream.job")
        saved = job_log.level
        job_log.setLevel(logging.DEBUG)
        loggers = [logging.getLogger(name) for name in ("rater", "sinks")]
        for logger in loggers:
            logger.addHandler(self)
        try:
            yield self
        finally:
            for logger in loggers:
                logger.removeHandler(self)
            job_log.setLevel(saved)


def _run_job(env: StreamEnv, **extra: str) -> tuple[RunSummary, list[str]]:
    """RaterJob(...).run() with a watchdog (a run that does not end is a failure); the
    summary and the warnings and errors the rater logged."""
    settings = env.settings(RATER_STREAM__IDLE_EXIT_S="3", **extra)
    job = RaterJob(settings, load_tariff(EXAMPLE_CONFIG), "a", clock=lambda: CLOCK_S)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["summary"] = job.run(handle_signals=False)
        except BaseException as exc:
            outcome["error"] = exc

    with _LogTap().attached() as tap:
        thread = threading.Thread(target=target, name="rater-under-fuzz", daemon=True)
        thread.start()
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while thread.is_alive() and time.monotonic() < deadline and not tap.crash_loop.is_set():
            thread.join(0.25)
        if thread.is_alive():
            job.stop()
            thread.join(60)
            why = (
                "restarted its clients again and again"
                if tap.crash_loop.is_set()
                else f"did not finish within {JOB_TIMEOUT_S:.0f}s"
            )
            logged = "\n  ".join(dict.fromkeys(tap.lines))
            pytest.fail(
                f"the rater {why}; so far {dict(job.summary.counts)} in "
                f"{job.summary.batches} batches, {job.summary.aborted} aborted. It logged:\n  "
                f"{logged}\n{tap.traceback or ''}"
            )
    if "error" in outcome:
        raise outcome["error"]
    summary: RunSummary = outcome["summary"]
    return summary, tap.problems


def _end_offsets(env: StreamEnv, kinds: Iterable[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer(
        {"bootstrap.servers": env.bootstrap, "group.id": f"w-{uuid.uuid4().hex[:8]}"}
    )
    try:
        ends = {}
        for kind in kinds:
            topic = env.topic(kind)
            parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
            for p in parts:
                ends[(topic, p)] = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=30
                )[1]
        return ends
    finally:
        consumer.close()


# =========================================================================== reading outputs


@dataclass
class Outputs:
    rated: dict[tuple[int, int], tuple[bytes, dict[str, Any]]] = field(default_factory=dict)
    dead: dict[str, dict[tuple[int, int], Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _read_outputs(env: StreamEnv) -> Outputs:
    """The rated topic by source position (each value decoded by fastavro) and the
    dead-letter topic by source topic and position; balance events must decode too."""
    out = Outputs()
    for m in read_topic(env.bootstrap, env.topic("events")):
        try:
            wire.decode_balance_event(m.value())
        except Exception as exc:
            out.problems.append(f"event p{m.partition()}@{m.offset()} unreadable: {exc}")
    for m in read_topic(env.bootstrap, env.topic("rated")):
        try:
            rec = wire.decode_rated(m.value())
        except Exception as exc:
            out.problems.append(
                f"rated p{m.partition()}@{m.offset()} unreadable by fastavro: {exc}"
            )
            continue
        pos = (rec["source_partition"], rec["source_offset"])
        if pos in out.rated:
            out.problems.append(f"source {pos} rated twice")
        out.rated[pos] = (m.value(), rec)
    for m in read_topic(env.bootstrap, env.topic("dlq")):
        headers = dict(m.headers() or [])
        if not headers.get("rater.reason"):
            out.problems.append(f"dead letter without rater.reason: p{m.partition()}@{m.offset()}")
            continue
        source = headers["rater.source.topic"].decode()
        if source not in (env.topic("cdrs"), env.topic("topups")):
            out.problems.append(f"dead letter from {source}: p{m.partition()}@{m.offset()}")
        pos = (int(headers["rater.source.partition"]), int(headers["rater.source.offset"]))
        by_pos = out.dead.setdefault(source, {})
        if pos in by_pos:
            out.problems.append(f"{source} {pos} dead-lettered twice")
        by_pos[pos] = m
    return out


def _reason(letter: Any) -> str:
    reason: bytes = dict(letter.headers())["rater.reason"]
    return reason.decode()


# =========================================================================== checks


def _count_problems(
    summary: RunSummary, sent: Sequence[Sent], fates: Sequence[Fate], outputs: Outputs, topic: str
) -> list[str]:
    """consumed = rated + unrated + duplicate + invalid + dead_lettered = messages sent, and
    the topics hold what the counts say."""
    c = summary.counts
    statuses = ("rated", "unrated", "duplicate", "invalid", "dead_lettered")
    problems = list(outputs.problems)
    if not c["consumed"] == sum(c[s] for s in statuses) == len(sent):
        problems.append(f"counts {dict(c)} do not add up to the {len(sent)} messages sent")
    expected_dead = sum(f.dead is not None for f in fates)
    if c["dead_lettered"] != expected_dead:
        problems.append(f"dead_lettered {c['dead_lettered']}, expected {expected_dead}")
    invalid = sum(r["status"] == "invalid" for _, r in outputs.rated.values())
    if c["invalid"] != invalid:
        problems.append(f"invalid {c['invalid']}, rated topic has {invalid} invalid records")
    letters = len(outputs.dead.get(topic, {}))
    if letters != c["dead_lettered"] + c["invalid"]:
        problems.append(
            f"{letters} CDR dead letters, not dead_lettered + invalid = "
            f"{c['dead_lettered'] + c['invalid']}"
        )
    if len(outputs.rated) != c["consumed"] - c["dead_lettered"]:
        problems.append(f"{len(outputs.rated)} rated records, not consumed - dead_lettered")
    return problems


def _message_problems(
    sent: Sequence[Sent], fates: Sequence[Fate], outputs: Outputs, topic: str
) -> list[str]:
    """Each CDR message ended where its fate says, once, with its bytes intact."""
    problems = []
    dead = outputs.dead.get(topic, {})
    for s, fate in zip(sent, fates, strict=True):
        letter, rated = dead.get(s.pos), outputs.rated.get(s.pos)
        if fate.dead is not None:
            if letter is None:
                problems.append(f"not dead-lettered (rated: {rated is not None}): {s.describe()}")
            elif _reason(letter) not in fate.dead:
                problems.append(
                    f"dead-lettered as {_reason(letter)}, not {sorted(fate.dead)}: {s.describe()}"
                )
            if rated is not None:
                problems.append(
                    f"rated as {rated[1]['status']}/{rated[1]['reason']}, should be dead: {s.describe()}"
                )
        elif rated is None:
            why = f"dead-lettered as {_reason(letter)}" if letter is not None else "lost"
            problems.append(f"not in the rated topic ({why}): {s.describe()}")
        else:
            problems += _rated_message_problems(s, fate, rated, letter)
        if letter is not None and (letter.value() or b"") != (s.out.value or b""):
            problems.append(f"dead letter value differs from the original: {s.describe()}")
        if letter is not None and letter.key() != s.out.key:
            problems.append(
                f"dead letter key {letter.key()!r} differs from the original: {s.describe()}"
            )
    return problems


def _rated_message_problems(
    s: Sent, fate: Fate, rated: tuple[bytes, dict[str, Any]], letter: Any
) -> list[str]:
    value, rec = rated
    status, reason = rec["status"], rec["reason"]
    problems = []
    if fate.record is not None and not value.startswith(s.out.value or b"-"):
        problems.append(f"rated record does not start with the CDR's bytes: {s.describe()}")
    if fate.rule1 == "pass" and status == "invalid":
        problems.append(f"passes rule 1 but rated invalid/{reason}: {s.describe()}")
    if fate.rule1 in RULE1_REASONS and (status, reason) != ("invalid", fate.rule1):
        problems.append(
            f"rated {status}/{reason}, rule 1 says invalid/{fate.rule1}: {s.describe()}"
        )
    if status == "invalid" and (letter is None or _reason(letter) != reason):
        got = None if letter is None else _reason(letter)
        problems.append(f"invalid/{reason} but dead letter reason is {got}: {s.describe()}")
    if status != "invalid" and letter is not None:
        problems.append(f"{status} and also dead-lettered as {_reason(letter)}: {s.describe()}")
    return problems


def _bounds_problems(outputs: Outputs) -> list[str]:
    """No record outside [2000, 2100) is rated; no charge above 10**12 micros."""
    lo, hi = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    problems = []
    for pos, (_, rec) in sorted(outputs.rated.items()):
        times = [rec[c] for c in ("start_time", "answer_time", "end_time") if rec[c] is not None]
        if rec["status"] == "rated" and not all(lo <= t < hi for t in times):
            problems.append(f"{pos} rated with times {times}")
        if rec["charge_micros"] > 10**12 or rec["charge_micros"] < 0:
            problems.append(f"{pos} charge_micros {rec['charge_micros']}")
    return problems


def _cdr_frame(records: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """CDR_SCHEMA rows from records whose times are integer micros."""
    plain = {k: (pl.Int64() if v == TIME else v) for k, v in CDR_SCHEMA.items()}
    frame = pl.DataFrame(list(records), schema=plain)
    return frame.with_columns(pl.col(c).cast(TIME) for c, t in CDR_SCHEMA.items() if t == TIME)


@dataclass(frozen=True)
class Reference:
    rated: list[dict[str, Any]]  # RATING_FIELDS of each record, in input order
    balances: pl.DataFrame  # tenant_id, balance_micros of every prepaid tenant


def _rate_file(frame: pl.DataFrame, tmp_path: Path, name: str) -> Reference:
    """What `rater rate-file` makes of these records, in this order."""
    src = tmp_path / f"{name}.parquet"
    frame.select(list(CDR_SCHEMA)).write_parquet(src)
    out = tmp_path / f"{name}-reference"
    rate_file(EXAMPLE_CONFIG, src, out)
    rated = pl.read_parquet(out / "rated.parquet").select(RATING_FIELDS).to_dicts()
    return Reference(rated, pl.read_parquet(out / "balances.parquet"))


def _reference_problems(
    label: str, sent: Sequence[Sent], reference: Sequence[dict[str, Any]], outputs: Outputs
) -> list[str]:
    problems = []
    for s, want in zip(sent, reference, strict=True):
        got = outputs.rated.get(s.pos)
        if got is None:
            continue  # reported by _message_problems
        diff = {k: (got[1][k], v) for k, v in want.items() if got[1][k] != v}
        if diff:
            problems.append(f"{label}: (stream, rate-file) differ {diff}: {s.describe()}")
    return problems


_MONTH = re.compile(r"month=(\d{4})-(\d{2})")


def _dataset_problems(out: Path, outputs: Outputs) -> list[str]:
    """The Parquet dataset holds every rated record once, in sane month folders, with
    nothing left staged or half written."""
    problems = []
    rated_dir = out / "rated"
    for d in sorted(p for p in rated_dir.iterdir() if p.is_dir() and p.name.startswith("month=")):
        m = _MONTH.fullmatch(d.name)
        sane = d.name == "month=undated" or (
            m is not None and 2000 <= int(m[1]) < 2100 and 1 <= int(m[2]) <= 12
        )
        if not sane:
            problems.append(f"month folder {d.name}")
    files = sorted(rated_dir.glob("month=*/*.parquet"))
    rows = pl.concat(
        [
            pl.read_parquet(
                f, columns=["source_partition", "source_offset"], hive_partitioning=False
            )
            for f in files
        ]
    )
    positions = set(rows.iter_rows())
    if rows.height != len(outputs.rated) or positions != set(outputs.rated):
        problems.append(
            f"dataset has {rows.height} rows ({len(positions)} distinct), rated topic {len(outputs.rated)}"
        )
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    leftovers += [p for p in out.rglob("*") if "_staging" in p.parts and p.is_file()]
    problems += [f"left behind: {p.relative_to(out)}" for p in leftovers]
    con = duckdb.connect(str(out / "rater.duckdb"), read_only=True)
    try:
        (n,) = con.execute("SELECT count(*) FROM rated_usage").fetchone()  # type: ignore[misc]
    finally:
        con.close()
    if n != len(outputs.rated):
        problems.append(f"the rated_usage view has {n} rows, the rated topic {len(outputs.rated)}")
    return problems


def _topup_problems(
    sent: Sequence[Sent], outputs: Outputs, topic: str, summary: RunSummary
) -> list[str]:
    """Every hostile top-up is dead-lettered with a reason, no valid one is."""
    problems = []
    dead = outputs.dead.get(topic, {})
    for s in sent:
        letter = dead.get(s.pos)
        if s.out.expect == "dead" and letter is None:
            problems.append(f"top-up not dead-lettered: {s.describe()}")
        if s.out.expect == "valid" and letter is not None:
            problems.append(f"valid top-up dead-lettered as {_reason(letter)}: {s.describe()}")
    if set(dead) - {s.pos for s in sent}:
        problems.append(
            f"dead letters of unknown top-ups: {sorted(set(dead) - {s.pos for s in sent})[:5]}"
        )
    valid = [s for s in sent if s.out.expect == "valid"]
    distinct = len({s.out.value for s in valid})
    c = summary.counts
    if (c["adjustment_applied"], c["adjustment_duplicate"]) != (distinct, len(valid) - distinct):
        problems.append(
            f"top-ups applied/duplicate {c['adjustment_applied']}/{c['adjustment_duplicate']}, "
            f"expected {distinct}/{len(valid) - distinct}"
        )
    return problems


def _balance_problems(env: StreamEnv, opening: pl.DataFrame, credits: dict[str, int]) -> list[str]:
    """The changelog's balances: rate-file's for the valid CDRs, plus each top-up once."""
    settings = env.settings()
    state = RatingState.empty()
    for p in range(env.partitions):
        state = state.merge(restore_partition(settings, env.topic("changelog"), p).state)
    got = dict(balances_frame(load_tariff(EXAMPLE_CONFIG), state).iter_rows())
    want = {t: b + credits.get(t, 0) for t, b in opening.iter_rows()}
    return [
        f"balance of {t}: {got.get(t)}, expected {w}" for t, w in want.items() if got.get(t) != w
    ]


def _restart_problems(env: StreamEnv) -> list[str]:
    """A second run on the same topics consumes nothing and produces nothing."""
    kinds = ("rated", "events", "dlq", "changelog")
    before = _end_offsets(env, kinds)
    again, logged = _run_job(env)
    problems = [f"on restart: {line}" for line in logged]
    if again.counts["consumed"] or again.batches:
        problems.append(f"restart consumed {dict(again.counts)} in {again.batches} batches")
    after = _end_offsets(env, kinds)
    if after != before:
        grew = {tp: (before.get(tp), n) for tp, n in after.items() if before.get(tp) != n}
        problems.append(f"restart produced output: {grew}")
    return problems


def _report(problems: Sequence[str], examples: int = 2) -> str:
    """Problems grouped by what went wrong and to which kind of message, with the first
    few examples of each group (the smallest message first: the best reproducer)."""
    groups: dict[str, list[str]] = {}
    for p in problems:
        what, _, rest = p.partition(": [")
        kind = rest.partition("]")[0]
        groups.setdefault(re.sub(r"\d+", "N", what) + (f" [{kind}]" if kind else ""), []).append(p)
    lines = [f"{len(problems)} problem(s) in {len(groups)} group(s):"]
    for name, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"- {len(members)} x {name}")
        lines += [f"    {p[:700]}" for p in sorted(members, key=len)[:examples]]
    return "\n".join(lines)


# =========================================================================== the tests


def test_hostile_avro_cdrs_and_topups(fuzz_env: StreamEnv, tmp_path: Path) -> None:
    env, rng = fuzz_env, random.Random(SEED)
    valid = _valid_cdrs(5_000, seed=SEED % 1000)
    cdr_fuzz = CdrFuzzer(rng, env.partitions)
    items = _with_calm_end(
        rng,
        _valid_avro_items(valid),
        cdr_fuzz.messages(10_000),
        cdr_fuzz.rare_poison(24),
        calm=3_500,
    )
    sent = _publish_recorded(env.bootstrap, env.topic("cdrs"), items)
    topup_fuzz = TopupFuzzer(rng, env.partitions)
    sent_topups = _publish_recorded(
        env.bootstrap, env.topic("topups"), topup_fuzz.messages(valid=150, resent=50, hostile=600)
    )
    assert len(sent) == len(items) and sum(s.out.kind == "valid" for s in sent) >= 4_500
    assert len(sent_topups) >= 800

    summary, logged = _run_job(env)

    fates = [_avro_fate(s, env.partitions) for s in sent]
    outputs = _read_outputs(env)
    problems = _count_problems(summary, sent, fates, outputs, env.topic("cdrs"))
    problems += _declared_fate_problems(sent, fates)
    problems += _message_problems(sent, fates, outputs, env.topic("cdrs"))
    problems += _bounds_problems(outputs)
    # The valid CDRs rate as they would alone; every routed CDR as rate-file rates it.
    reference = _rate_file(valid, tmp_path, "valid")
    valid_sent = [s for s in sent if s.out.kind == "valid"]
    problems += _reference_problems("valid CDRs", valid_sent, reference.rated, outputs)
    routed = [(s, f.record) for s, f in zip(sent, fates, strict=True) if f.record is not None]
    everything = _rate_file(_cdr_frame([r for _, r in routed]), tmp_path, "routed")
    problems += _reference_problems(
        "routed CDRs", [s for s, _ in routed], everything.rated, outputs
    )
    problems += _topup_problems(sent_topups, outputs, env.topic("topups"), summary)
    credits = _topup_credits(sent_topups, "avro")
    problems += _balance_problems(env, reference.balances, credits)
    problems += _dataset_problems(env.out, outputs)
    problems += logged
    problems += _restart_problems(env)
    assert not problems, _report(problems)


# --------------------------------------------------------------------------- JSON input


def _json_rec(
    fuzz: CdrFuzzer, shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None, **changes: Any
) -> bytes:
    """A HOSTILE_TENANT record that passes rule 1, reshaped, then changed, as JSON."""
    rec = fuzz.plain()
    if shape is not None:
        rec.update(shape(rec))
    rec.update(changes)
    return json.dumps(rec).encode()


def _iso_times(fuzz: CdrFuzzer) -> bytes:
    start = NOW - timedelta(seconds=fuzz.rng.randrange(3_600, 7_200))
    end = (start + timedelta(seconds=20)).isoformat().replace("+00:00", "Z")
    return _json_rec(fuzz, lambda r: _unanswered(0, 0), start_time=start.isoformat(), end_time=end)


def _deep_field(fuzz: CdrFuzzer) -> bytes:
    deep = "[" * 10_000 + "]" * 10_000
    return _json_rec(fuzz).replace(b'"user_id": null', f'"user_id": {deep}'.encode())


def _digits_5000(fuzz: CdrFuzzer) -> bytes:
    return _json_rec(fuzz, hold_ms=0).replace(b'"hold_ms": 0', b'"hold_ms": ' + b"7" * 5000)


JsonMaker = Callable[[CdrFuzzer], bytes | None]

# Hostile JSON CDRs: (name, fate as in Outgoing.expect, value). Keyed by HOSTILE_TENANT.
JSON_HOSTILE: list[tuple[str, str, JsonMaker]] = [
    ("not_json", "dead", lambda f: f.rng.choice([b"{not json", b"\xff\xfe{}", b"   ", b"\x00"])),
    ("random_bytes", "dead", lambda f: b"\xff" + _garbage(f.rng, f.rng.randrange(1, 200))),
    ("json_array", "dead", lambda f: b"[" + _json_rec(f) + b"]"),
    ("json_scalar", "dead", lambda f: f.rng.choice([b"null", b"42", b'"cdr"', b"true", b"1e400"])),
    ("deep_array_10k", "dead", lambda f: b"[" * 10_000 + b"]" * 10_000),
    ("deep_array_100k", "dead", lambda f: b"[" * 100_000 + b"]" * 100_000),
    ("deep_field", "dead", _deep_field),
    ("hold_10_pow_30", "dead", lambda f: _json_rec(f, _call, hold_ms=10**30)),
    ("time_10_pow_30", "dead", lambda f: _json_rec(f, start_time=10**30)),
    ("int_of_5000_digits", "dead", _digits_5000),
    ("float_hold", "dead", lambda f: _json_rec(f, _call, hold_ms=1.5)),
    ("float_segments", "dead", lambda f: _json_rec(f, _sms, segments=1.0)),
    ("float_time", "dead", lambda f: _json_rec(f, start_time=1.7e15)),
    ("nan_hold", "dead", lambda f: _json_rec(f, hold_ms=float("nan"))),
    ("infinite_time", "dead", lambda f: _json_rec(f, end_time=float("inf"))),
    ("string_hold", "dead", lambda f: _json_rec(f, hold_ms="5")),
    ("string_segments", "dead", lambda f: _json_rec(f, segments="1")),
    ("bool_hold", "dead", lambda f: _json_rec(f, hold_ms=True)),
    ("word_time", "dead", lambda f: _json_rec(f, start_time="soon")),
    ("surrogate_cdr_id", "dead", lambda f: _json_rec(f, cdr_id="\ud800")),
    ("surrogate_callee", "dead", lambda f: _json_rec(f, callee="+1\udfff2")),
    ("surrogate_user_id", "dead", lambda f: _json_rec(f, user_id="x\ud800")),
    (
        "iso_year_9999",
        "bad_times",
        lambda f: _json_rec(
            f,
            lambda r: _unanswered(0, 0),
            start_time="9999-12-31T23:58:00+00:00",
            end_time="9999-12-31T23:59:00+00:00",
        ),
    ),
    (
        "iso_year_1",
        "bad_times",
        lambda f: _json_rec(
            f,
            lambda r: _unanswered(0, 0),
            start_time="0001-01-01T00:00:00+00:00",
            end_time="0001-01-01T00:01:00Z",
        ),
    ),
    ("iso_without_offset", "dead", lambda f: _json_rec(f, start_time="2026-11-20T10:00:00")),
    ("iso_times", "pass", _iso_times),
    (
        "int_times_int64_max",
        "dead:timestamp_out_of_range",
        lambda f: _json_rec(f, lambda r: _unanswered(I64_MAX - 10, I64_MAX)),
    ),
    ("empty_object", "dead", lambda f: b"{}"),
    ("missing_fields", "dead", lambda f: b'{"cdr_id": "x", "tenant_id": "hooli"}'),
    ("unknown_kind", "dead", lambda f: _json_rec(f, kind=f.rng.choice(["fax", "CALL", "", None]))),
    ("hold_negative", "bad_hold", lambda f: _json_rec(f, _call, hold_ms=-5)),
    ("callee_40_digits", "bad_number", lambda f: _json_rec(f, callee="+" + _digits(f.rng, 40))),
    ("extra_fields", "pass", lambda f: _json_rec(f, extra={"a": [1, 2]}, surprise=None)),
    ("empty", "dead:empty_message", lambda f: f.rng.choice([b"", None])),
]


def _json_hostile(fuzz: CdrFuzzer) -> Outgoing:
    """One hostile JSON message: from JSON_HOSTILE, or a valid record misrouted."""
    g = fuzz.rng
    roll = g.randrange(len(JSON_HOSTILE) + 2)
    if roll == len(JSON_HOSTILE):
        other = g.choice(VALID_TENANTS).encode()
        return Outgoing("json_wrong_key", other, _json_rec(fuzz), expect="dead:misrouted")
    if roll > len(JSON_HOSTILE):
        return Outgoing("json_null_key", None, _json_rec(fuzz), expect="dead:misrouted")
    name, expect, make = JSON_HOSTILE[roll]
    return Outgoing(name, HOSTILE_TENANT.encode(), make(fuzz), expect=expect)


def _json_fate(s: Sent) -> Fate:
    """JSON fates are the fuzzer's intent (see _json_hostile)."""
    expect = s.out.expect or "dead"
    if expect.startswith("dead"):
        wanted = expect.partition(":")[2]
        return Fate(dead=frozenset({wanted}) if wanted else JSON_REASONS | {"empty_message"})
    return Fate(rule1=expect if expect != "valid" else None)


def _json_topups(rng: random.Random, partitions: int) -> list[Outgoing]:
    fuzz = TopupFuzzer(rng, partitions, fmt="json")
    hostile = [
        fuzz.prepaid("iso_without_offset", time="2026-11-20T10:00:00"),
        fuzz.prepaid("iso_year_9999", time="9999-12-31T00:00:00+00:00"),
        fuzz.prepaid("float_time", time=1.7e15),
        fuzz.prepaid("number_amount", amount=25),
        fuzz.prepaid("amount_1e30", amount="1e30"),
        fuzz.prepaid("surrogate_topup_id", topup_id="\ud800"),
        fuzz.prepaid("surrogate_amount", amount="\ud800"),
        fuzz.prepaid("list_source", source=["manual"]),
        Outgoing("not_json", b"globex", b"{nope", expect="dead"),
        Outgoing("deep", b"globex", b"[" * 50_000 + b"]" * 50_000, expect="dead"),
    ]
    return _interleave(rng, fuzz.valid(40, 10), [h for h in hostile if h is not None])


def test_hostile_json_cdrs_and_topups(fuzz_env: StreamEnv, tmp_path: Path) -> None:
    env, rng = fuzz_env, random.Random(SEED + 1)
    valid = _valid_cdrs(1_000, seed=SEED % 1000 + 1)
    fuzz = CdrFuzzer(rng, env.partitions)
    hostile = [_json_hostile(fuzz) for _ in range(2_000)]
    items = _interleave(rng, _valid_json_items(valid), hostile)
    sent = _publish_recorded(env.bootstrap, env.topic("cdrs"), items)
    sent_topups = _publish_recorded(
        env.bootstrap, env.topic("topups"), _json_topups(rng, env.partitions)
    )

    summary, logged = _run_job(env, RATER_STREAM__INPUT_FORMAT="json")

    fates = [_json_fate(s) for s in sent]
    outputs = _read_outputs(env)
    problems = _count_problems(summary, sent, fates, outputs, env.topic("cdrs"))
    problems += _message_problems(sent, fates, outputs, env.topic("cdrs"))
    problems += _bounds_problems(outputs)
    reference = _rate_file(valid, tmp_path, "valid")
    valid_sent = [s for s in sent if s.out.kind == "valid"]
    problems += _reference_problems("valid CDRs", valid_sent, reference.rated, outputs)
    problems += _topup_problems(sent_topups, outputs, env.topic("topups"), summary)
    credits = _topup_credits(sent_topups, "json")
    problems += _balance_problems(env, reference.balances, credits)
    problems += _dataset_problems(env.out, outputs)
    problems += logged
    problems += _restart_problems(env)
    assert not problems, _report(problems)
